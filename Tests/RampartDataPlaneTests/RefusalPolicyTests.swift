import NIOCore
import NIOHTTP1
import Testing

@testable import RampartCore
@testable import RampartDataPlane

/// One test per row of the refusal policy table (docs/people-first.md): who may be refused,
/// challenged, slowed or queued, through the request phases as the gateway runs them, with the
/// site under attack and the proof-of-work tier in force unless a row says otherwise.
@Suite struct RefusalPolicyTests {
    static let browser = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
    static let key = "tax-software-key-0001"

    /// A site with members (`sid`), one API key, an allow-listed monitoring block, tight address
    /// limits (2/s per address, 4/s per /24) and no cache (every request would go to the origin).
    static func bench(waitSeconds: Int = 0) -> PhaseBench {
        PhaseBench { c in
            c.sites[0].cache.enabled = false
            c.sites[0].sessionCookies = ["sid"]
            c.sites[0].apiKeys = [key]
            c.sites[0].challenge.difficulty = 6
            c.sites[0].challenge.waitSeconds = waitSeconds
            var subnet = RateLimitRule(name: "per-subnet", ratePerSecond: 4, burst: 4)
            subnet.key = .subnet
            c.sites[0].rateLimits = [RateLimitRule(name: "per-ip", ratePerSecond: 2, burst: 2), subnet]
            c.knownGood.allow = CIDRSet([CIDR("192.0.2.0/24")!])
            c.bans.enabled = false
        }
    }

    /// The whole request pipeline for one request: `.next` means it goes on to the origin.
    static func run(
        _ bench: PhaseBench, _ method: HTTPMethod, _ uri: String, peer: String = "198.51.100.7", headers: [(String, String)] = []
    ) -> (RequestContext, PhaseResult) {
        let agent = headers.contains { $0.0 == "User-Agent" } ? [] : [("User-Agent", browser)]
        var r = bench.request(method, uri, headers: [("Host", "example.org"), ("Accept", "text/html")] + agent + headers, peer: peer)
        let result = RequestPipeline.run(&r, loop: bench.loop, now: bench.now)
        return (r, result)
    }

    static func run(_ bench: PhaseBench, _ uri: String, peer: String = "198.51.100.7", headers: [(String, String)] = []) -> (RequestContext, PhaseResult) {
        run(bench, .GET, uri, peer: peer, headers: headers)
    }

    /// Neighbours in 198.51.100.0/24 use up the subnet's share: someone else's flood.
    static func floodTheSubnet(_ bench: PhaseBench) {
        var limited = 0
        for i in 20..<40 { if run(bench, "/", peer: "198.51.100.\(i)").1.refusal == .rateLimited { limited += 1 } }
        #expect(limited > 10)
    }

    static func underAttack(_ bench: PhaseBench, tier: ChallengeTier = .pow) { bench.loop.setMode(site: "www", mode: .underAttack, tier: tier) }

    static func body(_ result: PhaseResult) -> String? {
        if case .respond(.page(_, let body, _, _)) = result { return body }
        return nil
    }

    static func between(_ text: String, _ start: String, _ end: String) -> String? {
        guard let a = text.range(of: start), let b = text.range(of: end, range: a.upperBound..<text.endIndex) else { return nil }
        return String(text[a.upperBound..<b.lowerBound])
    }

    /// The `name=value` of a `Set-Cookie` among a page's headers.
    static func cookie(_ headers: [(String, String)], _ name: String) -> String? {
        headers.first { $0.0 == "Set-Cookie" && $0.1.hasPrefix(name + "=") }.map { String($0.1.split(separator: ";")[0]) }
    }

    // MARK: - Rows

    @Test func membersAreNeverChallengedNorRefusedForOthersFloodsOnlyForTheirOwn() throws {
        let bench = Self.bench()
        Self.underAttack(bench)
        Self.floodTheSubnet(bench)
        let token = SessionBinding.sign(name: "sid", value: "abc", keys: &bench.loop.keys, now: unixNow())
        let member = ("Cookie", "sid=abc; \(SessionBinding.cookie)=\(token)")
        for i in 0..<20 {
            let (r, result) = Self.run(bench, "/account/orders?page=\(i)", headers: [member])
            #expect(result.isNext)
            #expect(r.member != nil && r.cleared)
            #expect(OriginQueuePhase.priority(r, loop: bench.loop, now: bench.now))
            // The origin sees its own cookie, not the gateway's.
            #expect(r.forwardHead?.headers["cookie"] == ["sid=abc"])
        }
        // Forms too: a member posts without a clearance.
        #expect(Self.run(bench, .POST, "/account/settings", headers: [member]).1.isNext)

        // A made-up value with a real companion, the real name without one: not a member.
        let (forged, forgedResult) = Self.run(bench, "/account", peer: "203.0.113.9", headers: [("Cookie", "sid=zzz; \(SessionBinding.cookie)=\(token)")])
        #expect(forged.member == nil)
        #expect(try #require(forgedResult.page).headers.contains { $0 == ("X-Rampart-Challenge", "pow") })
        #expect(Self.run(bench, "/account", peer: "203.0.113.10", headers: [("Cookie", "sid=abc")]).1.page?.status == .forbidden)

        // The member's own flood is cut to one person's share (burst 200): 429, not a challenge.
        var statuses: [RejectReason?] = []
        for _ in 0..<260 { statuses.append(Self.run(bench, "/account", headers: [member]).1.refusal) }
        #expect(statuses.prefix(150).allSatisfy { $0 == nil })
        #expect(statuses.contains(.clearanceLimited))
    }

    @Test func aSessionTheOriginSetBecomesAMembershipAndALogoutEndsIt() throws {
        let bench = try ProxyBench { c in
            c.sites[0].sessionCookies = ["sid"]
            c.sites[0].cache.enabled = false
        }
        let home = try bench.client("198.51.100.7")
        try bench.send(home, "POST /login HTTP/1.1\r\nHost: example.org\r\nUser-Agent: test\r\nContent-Length: 3\r\n\r\nu=a")
        _ = try bench.origin.forwarded()
        try bench.origin.answer(0, "HTTP/1.1 303 See Other\r\nLocation: /account\r\nSet-Cookie: sid=s3cr3t; Path=/; HttpOnly\r\nContent-Length: 0\r\n\r\n")
        let login = try bench.received(home)
        #expect(login.hasPrefix("HTTP/1.1 303"))
        let companion = try #require(Self.between(login, "Set-Cookie: \(SessionBinding.cookie)=", ";"))

        bench.loop.setMode(site: "www", mode: .underAttack, tier: .pow)
        // From another network, with both cookies: straight to the origin, which sees only its own.
        let away = try bench.client("203.0.113.50")
        try bench.send(away, "GET /account HTTP/1.1\r\nHost: example.org\r\nUser-Agent: test\r\nCookie: sid=s3cr3t; \(SessionBinding.cookie)=\(companion)\r\n\r\n")
        let forwarded = try bench.origin.forwarded(bench.origin.connections.count - 1)
        #expect(forwarded.hasPrefix("GET /account HTTP/1.1\r\n"))
        #expect(forwarded.contains("Cookie: sid=s3cr3t\r\n"))
        // The origin logs the member out: the companion goes with the session.
        try bench.origin.answer(bench.origin.connections.count - 1, "HTTP/1.1 200 OK\r\nSet-Cookie: sid=; Max-Age=0; Path=/\r\nContent-Length: 2\r\n\r\nok")
        let logout = try bench.received(away)
        #expect(logout.hasPrefix("HTTP/1.1 200 OK"))
        #expect(logout.contains("Set-Cookie: \(SessionBinding.cookie)=; Path=/; Max-Age=0"))

        // A bot that copies the cookie's name with a value of its own meets the challenge.
        let bot = try bench.client("203.0.113.51")
        try bench.send(bot, "GET /account HTTP/1.1\r\nHost: example.org\r\nUser-Agent: test\r\nCookie: sid=guess; \(SessionBinding.cookie)=\(companion)\r\n\r\n")
        let refused = try bench.received(bot)
        #expect(refused.hasPrefix("HTTP/1.1 403"))
        #expect(refused.contains("X-Rampart-Challenge: pow"))
    }

    @Test func apiClientsWithConfiguredKeysAreNeverChallengedNorLimitedByTheirAddress() throws {
        let bench = Self.bench()
        Self.underAttack(bench)
        Self.floodTheSubnet(bench)
        for _ in 0..<20 {
            let (r, result) = Self.run(bench, .POST, "/reports/file", headers: [("Authorization", "Bearer \(Self.key)")])
            #expect(result.isNext)
            #expect(OriginQueuePhase.priority(r, loop: bench.loop, now: bench.now))
        }
        // An unknown key earns nothing: under attack, from a source the origin has not vouched
        // for, it is refused (429) before the origin checks it.
        let unknown = ("Authorization", "Bearer random-key-0123456789abcdef")
        #expect(Self.run(bench, "/reports", peer: "203.0.113.20", headers: [unknown]).1.refusal == .credentialsFailed)
        #expect(Self.run(bench, .POST, "/reports/file", peer: "203.0.113.21", headers: [unknown]).1.refusal == .credentialsFailed)
    }

    @Test func allowListedMonitoringIsNeverChallengedAndGoesFirstButKeepsItsRateLimit() {
        let bench = Self.bench()
        Self.underAttack(bench)
        let (probe, result) = Self.run(bench, "/status", peer: "192.0.2.10", headers: [("User-Agent", "curl/8.5")])
        #expect(result.isNext)
        #expect(OriginQueuePhase.priority(probe, loop: bench.loop, now: bench.now))
        // A probe asks a few times a minute; one that floods is limited like anyone.
        var refusals: [RejectReason?] = []
        for _ in 0..<5 { refusals.append(Self.run(bench, "/status", peer: "192.0.2.10").1.refusal) }
        #expect(refusals.contains(.rateLimited))
    }

    @Test func browsersWithJavaScriptSolveOneProofOfWorkThenPassAndGoFirst() throws {
        let bench = Self.bench()
        Self.underAttack(bench)
        let (_, first) = Self.run(bench, "/news?id=7")
        let page = try #require(first.page)
        #expect(page.status == .forbidden && page.decision == "challenged")
        let html = try #require(Self.body(first))
        let challenge = try #require(Self.between(html, #"var C=""#, #"""#))
        let answerURL = try #require(Self.between(html, #"location.replace(""#, #"""#))
        let answer = try #require(ProofOfWork.solve(challenge: challenge, difficulty: 6))
        bench.eventLoop.advanceTime(by: .seconds(2))
        let (_, solved) = Self.run(bench, answerURL + answer)
        let redirect = try #require(solved.page)
        #expect(redirect.status == .found)
        #expect(redirect.headers.contains { $0 == ("Location", "/news?id=7") })
        let clearance = try #require(Self.cookie(redirect.headers, ChallengeRoutes.cookie))
        bench.eventLoop.advanceTime(by: .seconds(2))
        let (r, back) = Self.run(bench, "/news?id=7", headers: [("Cookie", clearance)])
        #expect(back.isNext && r.cleared)
        #expect(OriginQueuePhase.priority(r, loop: bench.loop, now: bench.now))
    }

    @Test func peopleWithoutJavaScriptGetInThroughTheWaitNeverARefusal() throws {
        // The cookie check needs no JavaScript: a redirect that sets a cookie.
        let cookieTier = Self.bench()
        Self.underAttack(cookieTier, tier: .cookie)
        let check = try #require(Self.run(cookieTier, "/article/1").1.page)
        #expect(check.status == .found)
        let cookie = try #require(Self.cookie(check.headers, ChallengeRoutes.cookie))
        #expect(Self.run(cookieTier, "/article/1", headers: [("Cookie", cookie)]).1.isNext)

        // Proof of work: the page's <noscript> refresh leads to the wait; early, it says how long
        // is left (200, never 403); on time, a clearance that satisfies the proof-of-work tier.
        for waitSeconds in [30, 0] {
            let bench = Self.bench(waitSeconds: waitSeconds)
            Self.underAttack(bench)
            let (_, first) = Self.run(bench, "/article/2")
            let html = try #require(Self.body(first))
            let refresh = try #require(Self.between(html, #"http-equiv="refresh" content=""#, #"""#))
            let waitURL = try #require(refresh.split(separator: "=", maxSplits: 1).last).replacingOccurrences(of: "&amp;", with: "&")
            #expect(waitURL.hasPrefix(ChallengeRoutes.wait))
            bench.eventLoop.advanceTime(by: .seconds(2))
            let (_, waited) = Self.run(bench, waitURL)
            let page = try #require(waited.page)
            if waitSeconds > 0 {
                #expect(page.status == .ok)
                #expect(page.headers.contains { $0 == ("X-Rampart-Challenge", "wait") })
                continue
            }
            #expect(page.status == .found)
            let clearance = try #require(Self.cookie(page.headers, ChallengeRoutes.cookie))
            bench.eventLoop.advanceTime(by: .seconds(2))
            let (r, back) = Self.run(bench, "/article/2", headers: [("Cookie", clearance)])
            #expect(back.isNext && r.cleared)
            bench.eventLoop.advanceTime(by: .seconds(2))
            // and a form: any clearance will do.
            #expect(Self.run(bench, .POST, "/comment", headers: [("Cookie", clearance)]).1.isNext)
        }
    }

    @Test func searchEnginesAreUnknownClientsUnlessTheirRangesAreAllowListed() throws {
        let bench = Self.bench()
        Self.underAttack(bench, tier: .cookie)
        let googlebot = ("User-Agent", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
        // The name in the user agent earns nothing (anyone can send it): the cookie check.
        #expect(Self.run(bench, "/article/3", peer: "66.249.66.1", headers: [googlebot]).1.page?.status == .found)
        // Machine routes are never challenged.
        #expect(Self.run(bench, "/robots.txt", peer: "66.249.66.2", headers: [googlebot]).1.isNext)
        #expect(Self.run(bench, "/sitemap.xml", peer: "66.249.66.3", headers: [googlebot]).1.isNext)
        // Ranges the operator lists in `known_good.allow` pass (here the monitoring block).
        #expect(Self.run(bench, "/article/3", peer: "192.0.2.66", headers: [googlebot]).1.isNext)
    }

    @Test func unknownClientsAreChallengedLimitedAndRefusedFormsWithoutAClearance() throws {
        let bench = Self.bench()
        // Elevated: tools are checked, browsers pass (and are handed a clearance with the page).
        bench.loop.setMode(site: "www", mode: .elevated, tier: .cookie)
        #expect(Self.run(bench, "/", peer: "203.0.113.30", headers: [("User-Agent", "python-requests/2.31")]).1.page?.status == .found)
        let (browser, passed) = Self.run(bench, "/", peer: "203.0.113.31")
        #expect(passed.isNext && browser.setCookie != nil)

        Self.underAttack(bench)
        #expect(Self.run(bench, "/", peer: "203.0.113.32").1.page?.status == .forbidden)
        #expect(Self.run(bench, .POST, "/comment", peer: "203.0.113.33").1.refusal == .challengeRequired)
        #expect(Self.run(bench, .POST, "/login", peer: "203.0.114.33").1.refusal == .credentialsFailed)
        #expect(!OriginQueuePhase.priority(browser, loop: bench.loop, now: bench.now))
        // Over its address's limit: 429.
        var refusals: [RejectReason?] = []
        for _ in 0..<4 { refusals.append(Self.run(bench, "/", peer: "203.0.113.34").1.refusal) }
        #expect(refusals.contains(.rateLimited))
    }
}

/// Failed credentials as a signal, on the whole proxy path: the origin's 401s to a source's logins
/// and unknown keys block that source on those requests; its page views, members and configured
/// keys are unaffected.
@Suite struct CredentialPhaseTests {
    static let denied = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"
    static let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    @Test func aSourceWhoseLoginsAndKeysKeepFailingIsRefusedBeforeTheOriginOthersAreNot() throws {
        let bench = try ProxyBench { c in
            c.sites[0].cache.enabled = false
            c.sites[0].apiKeys = ["tax-software-key-0001"]
            c.sites[0].credentials.perSource = 3
            c.sites[0].origins[0].adaptiveConcurrency = false
        }
        // A refusal before a body arrived ends the connection: each attempt on a new one, as a sprayer would.
        func attempt(_ request: String) throws -> String {
            let sprayer = try bench.client("203.0.113.5")
            try bench.send(sprayer, request)
            let conn = bench.origin.connections.count - 1
            if try bench.origin.forwarded(conn).isEmpty == false { try bench.origin.answer(conn, Self.denied) }
            return try bench.received(sprayer)
        }
        let login = "POST /login HTTP/1.1\r\nHost: example.org\r\nContent-Length: 9\r\n\r\nu=x&p=yy1"
        let key = "GET /api/orders HTTP/1.1\r\nHost: example.org\r\nAuthorization: Bearer random-0123456789abcdef\r\n\r\n"
        // Three failures are allowed; the fourth goes past the allowance.
        for request in [login, key, login, key] { #expect(try attempt(request).hasPrefix("HTTP/1.1 401")) }
        // From then on: refused here, the origin never sees it.
        let refused = try attempt(login)
        #expect(refused.hasPrefix("HTTP/1.1 429"), "\(refused)")
        #expect(refused.contains("Retry-After: 600"))
        let second = try attempt(key)
        #expect(second.hasPrefix("HTTP/1.1 429"), "\(second)")
        #expect(bench.loop.counters.rejections[LoopCounters.reasonIndex[.credentialsFailed]!] == 2)

        // The same address reading pages, and a configured key from it, still reach the origin.
        let sprayer = try bench.client("203.0.113.5")
        try bench.send(sprayer, ProxyBench.get("/news"))
        let conn = bench.origin.connections.count - 1
        #expect(try bench.origin.forwarded(conn).hasPrefix("GET /news "))
        try bench.origin.answer(conn, Self.ok)
        #expect(try bench.received(sprayer).hasPrefix("HTTP/1.1 200"))
        try bench.send(sprayer, "POST /login HTTP/1.1\r\nHost: example.org\r\nX-API-Key: tax-software-key-0001\r\nContent-Length: 0\r\n\r\n")
        #expect(try bench.origin.forwarded(conn).hasPrefix("POST /login "))
        try bench.origin.answer(conn, Self.ok)
        #expect(try bench.received(sprayer).hasPrefix("HTTP/1.1 200"))
        // Another network logs in as before.
        let person = try bench.client("198.51.100.7")
        try bench.send(person, login)
        #expect(try bench.origin.forwarded(conn).hasPrefix("POST /login "))
    }
}

/// Behaviour under attack, through the phases: a clearance whose holder browses like a
/// cookie-keeping bot is challenged harder; one that loads the pages' assets is not.
@Suite struct BehaviourPhaseTests {
    static func clearance(_ bench: PhaseBench, peer: String) throws -> String {
        let (_, result) = RefusalPolicyTests.run(bench, "/first", peer: peer)
        let page = try #require(result.page)
        return try #require(RefusalPolicyTests.cookie(page.headers, ChallengeRoutes.cookie))
    }

    @Test func aClearanceBrowsingLikeABotMeetsProofOfWorkWithALongerWaitOneLoadingAssetsDoesNot() throws {
        let bench = PhaseBench { c in
            c.sites[0].cache.enabled = false
            c.sites[0].challenge.waitSeconds = 5
            c.bans.enabled = false
        }
        bench.loop.setMode(site: "www", mode: .underAttack, tier: .cookie)
        let bot = try Self.clearance(bench, peer: "203.0.113.5")
        let person = try Self.clearance(bench, peer: "198.51.100.7")
        var botResults: [PhaseResult] = []
        for i in 0..<6 {
            bench.eventLoop.advanceTime(by: .seconds(1))
            botResults.append(RefusalPolicyTests.run(bench, i % 2 == 0 ? "/article/\(i)" : "/search?q=x\(i)", peer: "203.0.113.5", headers: [("Cookie", bot)]).1)
            for asset in ["/static/site.css", "/static/app.js"] where i < 6 {
                #expect(RefusalPolicyTests.run(bench, asset, peer: "198.51.100.7", headers: [("Cookie", person)]).1.isNext)
            }
            #expect(RefusalPolicyTests.run(bench, "/article/\(i)", peer: "198.51.100.7", headers: [("Cookie", person)]).1.isNext)
        }
        #expect(botResults.prefix(3).allSatisfy { $0.isNext })
        let last = try #require(botResults.last?.page)
        #expect(last.status == .forbidden && last.headers.contains { $0 == ("X-Rampart-Challenge", "pow") })
        // Its no-JavaScript way in waits three times as long.
        let html = try #require(RefusalPolicyTests.body(botResults.last!))
        #expect(html.contains(#"http-equiv="refresh" content="15;url="#))
    }

    @Test func aWaitClearanceThatNeverLoadsAssetsIsRevoked() throws {
        let bench = PhaseBench { c in
            c.sites[0].cache.enabled = false
            c.sites[0].challenge.waitSeconds = 0
            c.bans.enabled = false
        }
        bench.loop.setMode(site: "www", mode: .underAttack, tier: .pow)
        let (_, first) = RefusalPolicyTests.run(bench, "/article/0", peer: "203.0.113.5")
        let html = try #require(RefusalPolicyTests.body(first))
        let refresh = try #require(RefusalPolicyTests.between(html, #"http-equiv="refresh" content=""#, #"""#))
        let waitURL = try #require(refresh.split(separator: "=", maxSplits: 1).last).replacingOccurrences(of: "&amp;", with: "&")
        let redeemed = try #require(RefusalPolicyTests.run(bench, waitURL, peer: "203.0.113.5").1.page)
        let clearance = try #require(RefusalPolicyTests.cookie(redeemed.headers, ChallengeRoutes.cookie))
        var passed = 0
        for i in 0..<8 where RefusalPolicyTests.run(bench, "/article/\(i)", peer: "203.0.113.5", headers: [("Cookie", clearance)]).1.isNext {
            passed += 1
        }
        #expect(passed == 3)
        // Revoked: loading an asset now does not bring it back.
        #expect(!RefusalPolicyTests.run(bench, "/static/site.css", peer: "203.0.113.5", headers: [("Cookie", clearance)]).1.isNext)
    }
}

/// Credential spraying from many fresh addresses: under attack, logins without a clearance and
/// unknown keys from sources the origin has not vouched for are refused before any of them failed.
@Suite struct SprayUnderAttackTests {
    @Test func underAttackUnknownKeysAndLoginsFromStrangersAreRefusedKnownOnesPass() {
        let bench = RefusalPolicyTests.bench()
        bench.loop.setMode(site: "www", mode: .underAttack, tier: .cookie)
        let unknown = ("Authorization", "Bearer sprayed-0123456789abcdef")
        #expect(RefusalPolicyTests.run(bench, "/api/orders", peer: "203.0.113.40", headers: [unknown]).1.refusal == .credentialsFailed)
        // The gateway's cookie does not excuse an unknown key (API software holds none).
        #expect(RefusalPolicyTests.run(bench, "/api/orders", peer: "203.0.113.41", headers: [unknown, ("Cookie", "__rampart=x")]).1.refusal == .credentialsFailed)
        #expect(RefusalPolicyTests.run(bench, .POST, "/login", peer: "203.0.113.42").1.refusal == .credentialsFailed)
        // A configured key, a monitoring address, a member: on as before.
        #expect(RefusalPolicyTests.run(bench, "/api/orders", peer: "203.0.113.43", headers: [("Authorization", "Bearer \(RefusalPolicyTests.key)")]).1.isNext)
        #expect(RefusalPolicyTests.run(bench, "/api/orders", peer: "192.0.2.9", headers: [unknown]).1.isNext)
        let token = SessionBinding.sign(name: "sid", value: "abc", keys: &bench.loop.keys, now: unixNow())
        #expect(RefusalPolicyTests.run(bench, .POST, "/login", peer: "203.0.113.44", headers: [("Cookie", "sid=abc; \(SessionBinding.cookie)=\(token)")]).1.isNext)
        // Not under attack, a stranger's first attempt goes to the origin (it has not failed yet).
        bench.loop.setMode(site: "www", mode: .elevated, tier: .cookie)
        #expect(RefusalPolicyTests.run(bench, "/api/orders", peer: "203.0.113.45", headers: [unknown]).1.isNext)
    }
}

/// Group scores and per-client escalation, through the phases: what each kind of client sees.
@Suite struct BehaviourGroupPhaseTests {
    static let flood = [("User-Agent", "Mozilla/5.0 (flood)")]
    static let reader = [("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Lynx-like reader"), ("Accept-Language", "de")]

    /// Tickets carry wall-clock time: tests that redeem one wait 0 s (the wait's length is
    /// checked on the page's refresh instead).
    static func bench(waitSeconds: Int = 5) -> PhaseBench {
        PhaseBench { c in
            c.sites[0].cache.enabled = false
            c.sites[0].sessionCookies = ["sid"]
            c.sites[0].apiKeys = [RefusalPolicyTests.key]
            c.sites[0].challenge.waitSeconds = waitSeconds
            c.sites[0].rateLimits = []
            c.bans.enabled = false
        }
    }

    /// Bot number `n`, each in its own /24.
    static func bot(_ n: Int) -> String { "10.\(n / 256).\(n % 256).9" }

    /// A person's page view: the page and its two assets; the page's result.
    @discardableResult
    static func view(_ bench: PhaseBench, _ path: String, peer: String, headers: [(String, String)]) -> PhaseResult {
        let page = RefusalPolicyTests.run(bench, path, peer: peer, headers: headers).1
        for asset in ["/static/site.css", "/static/app.js"] { _ = RefusalPolicyTests.run(bench, asset, peer: peer, headers: headers) }
        return page
    }

    static func isPoW(_ result: PhaseResult) -> Bool {
        guard let page = result.page else { return false }
        return page.status == .forbidden && page.headers.contains { $0 == ("X-Rampart-Challenge", "pow") }
    }

    @Test func aBotnetSharingAFingerprintMeetsProofOfWorkOnItsFirstPageWhilePeopleGetTheCookieCheck() throws {
        let bench = Self.bench()
        // Before the attack is seen (normal mode): nobody is challenged, behaviour is recorded.
        for n in 0..<30 {
            #expect(RefusalPolicyTests.run(bench, n % 2 == 0 ? "/article/\(n)" : "/search?q=\(n)", peer: Self.bot(n), headers: Self.flood).1.isNext)
        }
        for i in 0..<5 { #expect(Self.view(bench, "/", peer: "198.51.\(100 + i).7", headers: Self.reader).isNext) }
        Self.underAttack(bench)
        // A bot never seen before, from a /24 never seen before: proof of work on its first page,
        // whose no-JavaScript way in waits three times as long.
        let first = RefusalPolicyTests.run(bench, "/article/77", peer: Self.bot(1000), headers: Self.flood).1
        #expect(Self.isPoW(first))
        #expect(RefusalPolicyTests.body(first)?.contains(#"http-equiv="refresh" content="15;url="#) == true)
        // A person never seen before, without JavaScript, with a reader its group knows: the
        // cookie check (a plain redirect), then the page.
        let check = try #require(RefusalPolicyTests.run(bench, "/", peer: "198.51.120.7", headers: Self.reader).1.page)
        #expect(check.status == .found)
        let cookie = try #require(RefusalPolicyTests.cookie(check.headers, ChallengeRoutes.cookie))
        #expect(Self.view(bench, "/", peer: "198.51.120.7", headers: Self.reader + [("Cookie", cookie)]).isNext)
        // Members and configured API keys are never scored nor challenged, whatever they send.
        let token = SessionBinding.sign(name: "sid", value: "abc", keys: &bench.loop.keys, now: unixNow())
        #expect(RefusalPolicyTests.run(bench, "/search?q=1", peer: Self.bot(1001), headers: Self.flood + [("Cookie", "sid=abc; \(SessionBinding.cookie)=\(token)")]).1.isNext)
        #expect(RefusalPolicyTests.run(bench, "/orders", peer: Self.bot(1002), headers: Self.flood + [("X-API-Key", RefusalPolicyTests.key)]).1.isNext)
    }

    @Test func beforeAnyModeChangeAReaderWhoLoadsAssetsGoesFirstInTheOriginQueueBotsDoNot() {
        let bench = Self.bench()
        for i in 0..<4 {
            bench.eventLoop.advanceTime(by: .seconds(1))
            #expect(Self.view(bench, "/article/\(i)", peer: "198.51.100.7", headers: Self.reader).isNext)
            for n in 0..<10 { _ = RefusalPolicyTests.run(bench, "/search?q=\(i)-\(n)", peer: Self.bot(n), headers: Self.flood) }
        }
        let (person, p) = RefusalPolicyTests.run(bench, "/article/9", peer: "198.51.100.7", headers: Self.reader)
        #expect(p.isNext && OriginQueuePhase.priority(person, loop: bench.loop, now: bench.now))
        let (bot, b) = RefusalPolicyTests.run(bench, "/article/9", peer: Self.bot(3), headers: Self.flood)
        #expect(b.isNext && !OriginQueuePhase.priority(bot, loop: bench.loop, now: bench.now))
        // Nobody was challenged: normal mode only records.
        #expect(bench.loop.counters.challengesIssued == 0)
    }

    static func underAttack(_ bench: PhaseBench, tier: ChallengeTier = .cookie) {
        bench.loop.setMode(site: "www", mode: .underAttack, tier: tier)
    }

    @Test func aBotWithACookieClearanceLosesItOnItsGroupsWordWithoutFourPagesOfItsOwn() throws {
        let bench = Self.bench()
        Self.underAttack(bench)
        // One bot earns a cookie clearance before its fingerprint has a record.
        let check = try #require(RefusalPolicyTests.run(bench, "/", peer: Self.bot(0), headers: Self.flood).1.page)
        let cookie = try #require(RefusalPolicyTests.cookie(check.headers, ChallengeRoutes.cookie))
        #expect(RefusalPolicyTests.run(bench, "/", peer: Self.bot(0), headers: Self.flood + [("Cookie", cookie)]).1.isNext)
        // Its fellow bots, each on its first pages, are a group that loads nothing.
        for n in 1..<20 { _ = RefusalPolicyTests.run(bench, "/article/\(n)", peer: Self.bot(n), headers: Self.flood) }
        #expect(Self.isPoW(RefusalPolicyTests.run(bench, "/article/1", peer: Self.bot(0), headers: Self.flood + [("Cookie", cookie)]).1))
    }

    @Test func underAProofOfWorkTierAReaderWhoLoadsAssetsKeepsPassingWithTheCookieCheckANewcomerDoesNot() throws {
        let bench = Self.bench()
        Self.underAttack(bench)
        let check = try #require(RefusalPolicyTests.run(bench, "/", peer: "198.51.100.7", headers: Self.reader).1.page)
        let cookie = try #require(RefusalPolicyTests.cookie(check.headers, ChallengeRoutes.cookie))
        for i in 0..<4 {
            bench.eventLoop.advanceTime(by: .seconds(1))
            #expect(Self.view(bench, "/article/\(i)", peer: "198.51.100.7", headers: Self.reader + [("Cookie", cookie)]).isNext)
        }
        // The site-wide tier rises: the reader's own pages vouch for it, its cookie clearance passes.
        Self.underAttack(bench, tier: .pow)
        bench.eventLoop.advanceTime(by: .seconds(1))
        #expect(Self.view(bench, "/article/9", peer: "198.51.100.7", headers: Self.reader + [("Cookie", cookie)]).isNext)
        // Someone else's fresh cookie clearance, without pages of its own, meets proof of work.
        let other = try #require(RefusalPolicyTests.run(bench, "/", peer: "198.51.101.7", headers: Self.reader).1.page)
        #expect(other.status == .forbidden)
    }

    @Test func aPersonWithoutJavaScriptInABotsGroupGetsInThroughTheWaitAndKeepsTheClearanceByBrowsing() throws {
        let bench = Self.bench(waitSeconds: 0)
        Self.underAttack(bench)
        for n in 0..<20 { _ = RefusalPolicyTests.run(bench, "/search?q=\(n)", peer: Self.bot(n), headers: Self.flood) }
        // Same software as the bots (same fingerprint), another network.
        let person = "192.0.2.44"
        let (_, first) = RefusalPolicyTests.run(bench, "/article/5", peer: person, headers: Self.flood)
        #expect(Self.isPoW(first))
        let html = try #require(RefusalPolicyTests.body(first))
        let refresh = try #require(RefusalPolicyTests.between(html, #"http-equiv="refresh" content=""#, #"""#))
        let waitURL = try #require(refresh.split(separator: "=", maxSplits: 1).last).replacingOccurrences(of: "&amp;", with: "&")
        bench.eventLoop.advanceTime(by: .seconds(16))
        let redeemed = try #require(RefusalPolicyTests.run(bench, waitURL, peer: person, headers: Self.flood).1.page)
        #expect(redeemed.status == .found)
        let clearance = try #require(RefusalPolicyTests.cookie(redeemed.headers, ChallengeRoutes.cookie))
        // The group still says bot; the person's own pages, with their assets, say person.
        for i in 0..<8 {
            bench.eventLoop.advanceTime(by: .seconds(1))
            #expect(Self.view(bench, "/article/\(i)", peer: person, headers: Self.flood + [("Cookie", clearance)]).isNext)
        }
    }
}
