import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import RampartCore
@testable import RampartDataPlane

/// Each request phase on its own, over a loop context on an embedded event loop (virtual time, no
/// sockets): what it decides and what it leaves in the request's context for the next one.
final class PhaseBench {
    let eventLoop = EmbeddedEventLoop()
    let loop: LoopContext
    /// Sources the phases had banned: one strike is allowed, the second bans.
    var banned: [IPAddress] = []

    init(_ configure: (inout GatewayConfig) -> Void = { _ in }) {
        let config = PipelineHarness.config { config in
            config.bans.strikes = 1
            config.bans.strikesPerSecond = 0.001
            configure(&config)
        }
        loop = LoopContext(
            eventLoop: eventLoop, loopCount: 1, config: try! RuntimeConfig(config, generation: 1),
            logger: Logger(label: "test"), secret: [UInt8](repeating: 7, count: 32)
        )
        loop.reportBan = { [unowned self] ip, _ in self.banned.append(ip) }
    }

    var now: NIODeadline { eventLoop.now }

    /// A request as the connection's handler makes it when a head arrives.
    func request(
        _ method: HTTPMethod = .GET, _ uri: String = "/", headers: [(String, String)] = [("Host", "example.org")],
        peer: String = "198.51.100.7", scheme: String = "http", fingerprint: String? = nil
    ) -> RequestContext {
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: HTTPHeaders(headers))
        let facts = ConnectionFacts(peer: IPAddress(peer)!, scheme: scheme, fingerprint: fingerprint, limits: Limits())
        return RequestContext(id: loop.nextRequestID(), head: head, start: now, connection: facts, keepAlive: true)
    }

    /// Runs the phases up to and including routing, which every later phase needs.
    func routed(_ request: RequestContext) -> RequestContext {
        var r = request
        #expect(ClientAddressPhase.run(&r, loop: loop).isNext)
        #expect(FramingPhase.run(&r, loop: loop).isNext)
        #expect(RoutingPhase.run(&r, loop: loop).isNext)
        return r
    }

    func count(_ reason: RejectReason) -> Int { loop.counters.rejections[LoopCounters.reasonIndex[reason]!] }
}

extension PhaseResult {
    var isNext: Bool {
        if case .next = self { return true }
        return false
    }

    /// The refusal's reason, when the phase refused.
    var refusal: RejectReason? {
        if case .respond(.refusal(let reason, _, _)) = self { return reason }
        return nil
    }

    /// The page's status and headers, when the phase answered with a page of its own.
    var page: (status: HTTPResponseStatus, headers: [(String, String)], decision: String)? {
        if case .respond(.page(let status, _, let headers, let decision)) = self { return (status, headers, decision) }
        return nil
    }
}

@Suite struct RequestPhaseTests {
    @Test func clientAddressBelievesOnlyTrustedProxies() {
        let bench = PhaseBench { $0.trustedProxies = CIDRSet([CIDR("10.0.0.0/8")!]) }
        var viaProxy = bench.request(headers: [("Host", "example.org"), ("X-Forwarded-For", "203.0.113.9")], peer: "10.1.2.3")
        #expect(ClientAddressPhase.run(&viaProxy, loop: bench.loop).isNext)
        #expect(viaProxy.client == IPAddress("203.0.113.9"))
        var direct = bench.request(headers: [("Host", "example.org"), ("X-Forwarded-For", "203.0.113.9")], peer: "198.51.100.7")
        #expect(ClientAddressPhase.run(&direct, loop: bench.loop).isNext)
        #expect(direct.client == IPAddress("198.51.100.7"))
    }

    @Test func framingRefusesAmbiguityEndsTheConnectionAndStrikes() {
        let bench = PhaseBench()
        var bad = bench.request(.POST, "/", headers: [("Host", "example.org"), ("Content-Length", "5"), ("Transfer-Encoding", "chunked")])
        let result = FramingPhase.run(&bad, loop: bench.loop)
        #expect(result.refusal == .contentLengthWithTransferEncoding)
        #expect(!bad.keepAlive)
        // The second malformed request from the same client uses up its strikes.
        #expect(bench.banned.isEmpty)
        var again = bad
        _ = FramingPhase.run(&again, loop: bench.loop)
        #expect(bench.banned == [bad.client])

        var good = bench.request(.POST, "/a/./b/../c?x=1", headers: [("Host", "Example.ORG"), ("Content-Length", "3")])
        #expect(FramingPhase.run(&good, loop: bench.loop).isNext)
        #expect(good.accepted.target == "/a/c?x=1")
        #expect(good.accepted.host == "example.org")
        #expect(good.hasBody)
        #expect(good.keepAlive)
    }

    @Test func routingHoldsTheSiteRuntimeAndRefusesUnknownHosts() {
        let bench = PhaseBench()
        var unknown = bench.request(headers: [("Host", "elsewhere.example")])
        #expect(FramingPhase.run(&unknown, loop: bench.loop).isNext)
        #expect(RoutingPhase.run(&unknown, loop: bench.loop).refusal == .unknownHost)
        #expect(unknown.site == nil)
        let known = bench.routed(bench.request())
        #expect(known.site === bench.loop.sites[0])
    }

    /// A reload that removes and reorders sites: a request routed before keeps its site's policy
    /// and state; new requests see the new config.
    @Test func aRequestInFlightKeepsItsSiteAcrossAReloadThatRemovesAndReordersSites() throws {
        let bench = PhaseBench { config in
            var other = SiteConfig(name: "other", hosts: ["other.example"], origins: [OriginConfig(address: HostPort(host: "127.0.0.1", port: 2))])
            other.healthCheck.enabled = false
            config.sites.append(other)
        }
        var inFlight = bench.routed(bench.request(headers: [("Host", "other.example")]))
        let before = try #require(inFlight.site)
        #expect(before.name == "other")
        var www = bench.routed(bench.request())
        #expect(www.site?.name == "www")

        // The new config drops "www" and puts a new site first; "other" gets another origin.
        var reloaded = bench.loop.config.source
        var first = SiteConfig(name: "first", hosts: ["example.org"], origins: [OriginConfig(address: HostPort(host: "127.0.0.1", port: 3))])
        first.healthCheck.enabled = false
        var other = reloaded.sites[1]
        other.origins = [OriginConfig(address: HostPort(host: "127.0.0.1", port: 4))]
        reloaded.sites = [first, other]
        bench.loop.apply(try RuntimeConfig(reloaded, generation: 2), tls: [])

        // In flight: the same runtime, the old origin, the old site name.
        #expect(inFlight.site === before)
        #expect(inFlight.routed.config.origins.map(\.address.port) == [2])
        #expect(www.site?.name == "www")
        #expect(ForwardHeadPhase.run(&inFlight, loop: bench.loop).isNext)
        #expect(inFlight.forwardHead?.headers.first(name: "host") == "other.example")
        #expect(ForwardHeadPhase.run(&www, loop: bench.loop).isNext)
        #expect(www.forwardHead?.headers.first(name: "host") == "example.org")

        // New requests: "example.org" is now the new site, "other" has its new origin, and the
        // defence state of "other" was carried over.
        let fresh = bench.routed(bench.request())
        #expect(fresh.site?.name == "first")
        let otherNow = bench.routed(bench.request(headers: [("Host", "other.example")]))
        #expect(otherNow.site !== before)
        #expect(otherNow.routed.config.origins.map(\.address.port) == [4])
        #expect(otherNow.site?.defence === before.defence)
        #expect(bench.loop.sites.map(\.name) == ["first", "other"])
    }

    @Test func sizeLimitsUseTheSiteLimits() {
        let bench = PhaseBench { $0.sites[0].limits.maxURIBytes = 16 }
        var long = bench.routed(bench.request(.GET, "/" + String(repeating: "a", count: 40)))
        #expect(SizeLimitsPhase.run(&long, loop: bench.loop).refusal == .uriTooLong)
        var big = bench.routed(bench.request(.POST, "/", headers: [("Host", "example.org"), ("Content-Length", "\(Limits().maxBodyBytes + 1)")]))
        #expect(SizeLimitsPhase.run(&big, loop: bench.loop).refusal == .bodyTooLarge)
        #expect(!big.keepAlive)
        var fine = bench.routed(bench.request())
        #expect(SizeLimitsPhase.run(&fine, loop: bench.loop).isNext)
    }

    @Test func httpsRedirectOnlyOnPlainHTTP() {
        let bench = PhaseBench { $0.sites[0].httpsRedirect = true }
        var plain = bench.routed(bench.request(.GET, "/a?b=1", headers: [("Host", "example.org:8080")]))
        let page = HTTPSRedirectPhase.run(&plain, loop: bench.loop).page
        #expect(page?.status == .movedPermanently)
        #expect(page?.headers.first(where: { $0.0 == "Location" })?.1 == "https://example.org/a?b=1")
        var secure = bench.routed(bench.request(scheme: "https"))
        #expect(HTTPSRedirectPhase.run(&secure, loop: bench.loop).isNext)
    }

    @Test func accessRulesCountTheRequestAndApplyFingerprintRules() {
        let bench = PhaseBench { config in
            config.sites[0].fingerprints.deny = [FingerprintPattern("t13d1516h2_*")!]
            config.sites[0].fingerprints.challenge = [FingerprintPattern("t13d9999h2_*")!]
        }
        var denied = bench.routed(bench.request(fingerprint: "t13d1516h2_8daaf6152771_02713d6af862"))
        #expect(AccessRulesPhase.run(&denied, loop: bench.loop, now: bench.now).refusal == .fingerprintDenied)
        var challenged = bench.routed(bench.request(fingerprint: "t13d9999h2_8daaf6152771_02713d6af862"))
        #expect(AccessRulesPhase.run(&challenged, loop: bench.loop, now: bench.now).isNext)
        #expect(challenged.fingerprintVerdict == .challenge)
        #expect(bench.loop.sites[0].defence.traffic.requests == 2)
    }

    @Test func rateLimitsRefuseCloseOrHoldAsTheRuleSays() {
        for action in [RateLimitAction.reject, .close, .tarpit] {
            let bench = PhaseBench { config in
                var rule = RateLimitRule(name: "tight", ratePerSecond: 1, burst: 1)
                rule.action = action
                config.sites[0].rateLimits = [rule]
            }
            var first = bench.routed(bench.request())
            #expect(RateLimitPhase.run(&first, loop: bench.loop, now: bench.now).isNext)
            var second = bench.routed(bench.request())
            let result = RateLimitPhase.run(&second, loop: bench.loop, now: bench.now)
            switch (action, result) {
            case (.reject, .respond(.refusal(.rateLimited, let retryAfter, let detail))):
                #expect(retryAfter != nil)
                #expect(detail == "tight")
            case (.close, .close(.rateLimited, _)):
                break
            case (.tarpit, .hold(.tarpit(let delay, "tight", _))):
                #expect(delay <= RateLimitPhase.maxTarpit)
                #expect(!second.keepAlive)
            default:
                Issue.record("\(action): unexpected \(result)")
            }
            #expect(bench.loop.sites[0].defence.traffic.limited == 1)
        }
    }

    @Test func challengeRoutesRefuseForgedAnswersAndLeaveOtherPathsAlone() {
        let bench = PhaseBench()
        var other = bench.routed(bench.request(.GET, "/news"))
        #expect(ChallengeRoutesPhase.run(&other, loop: bench.loop, now: bench.now).isNext)
        var forged = bench.routed(bench.request(.GET, "/.rampart/pow?c=AAAA&a=1&r=/"))
        #expect(ChallengeRoutesPhase.run(&forged, loop: bench.loop, now: bench.now).refusal == .challengeFailed)
        #expect(bench.loop.counters.challengeFailures == 1)
        var replay = forged
        _ = ChallengeRoutesPhase.run(&replay, loop: bench.loop, now: bench.now)
        #expect(bench.banned == [forged.client])
    }

    @Test func challengeRunsOnlyWhenTheModeOrAFingerprintAsks() throws {
        let bench = PhaseBench()
        var calm = bench.routed(bench.request())
        #expect(ChallengePhase.run(&calm, loop: bench.loop, now: bench.now).isNext)
        #expect(calm.setCookie == nil)

        bench.loop.setMode(site: "www", mode: .underAttack, tier: .cookie)
        var first = bench.routed(bench.request(.GET, "/page?x=1"))
        let page = try #require(ChallengePhase.run(&first, loop: bench.loop, now: bench.now).page)
        #expect(page.status == .found)
        #expect(page.headers.contains { $0.0 == "Location" && $0.1 == "/page?x=1" })
        #expect(page.headers.contains { $0.0 == "Set-Cookie" && $0.1.hasPrefix(ChallengeRoutes.cookie + "=") })

        // The cookie it handed out passes the next request and marks it cleared.
        let cookie = try #require(page.headers.first { $0.0 == "Set-Cookie" }?.1.split(separator: ";").first.map(String.init))
        var back = bench.routed(bench.request(.GET, "/page?x=1", headers: [("Host", "example.org"), ("Cookie", cookie)]))
        #expect(ChallengePhase.run(&back, loop: bench.loop, now: bench.now).isNext)
        #expect(back.cleared)
        #expect(back.challengeChecked)
    }

    @Test func forwardHeadCarriesTheClientAndDropsTheClearance() {
        let bench = PhaseBench()
        var request = bench.routed(
            bench.request(.GET, "/x", headers: [("Host", "example.org"), ("Cookie", "\(ChallengeRoutes.cookie)=abc; session=1"), ("X-Real-IP", "1.2.3.4")])
        )
        #expect(ForwardHeadPhase.run(&request, loop: bench.loop).isNext)
        let head = request.forwardHead!
        #expect(head.headers.first(name: "x-forwarded-for") == "198.51.100.7")
        #expect(head.headers.first(name: "x-real-ip") == "198.51.100.7")
        #expect(head.headers.first(name: "cookie") == "session=1")
        #expect(request.upgrade == nil)
        let ws = HTTPRequestHead(
            version: .http1_1, method: .GET, uri: "/", headers: ["Upgrade": "websocket", "Connection": "keep-alive, Upgrade"]
        )
        #expect(ForwardHeadPhase.upgradeRequested(ws) == "websocket")
        let h2c = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["Upgrade": "h2c", "Connection": "Upgrade"])
        #expect(ForwardHeadPhase.upgradeRequested(h2c) == nil)
    }

    /// The first request for a key fetches for the cache, the next ones wait for it, a stored copy
    /// answers while fresh and, stale, answers at once while one background fetch refreshes it.
    @Test func cacheLookupFetchesOnceCoalescesAndServesStale() throws {
        let bench = PhaseBench()
        func lookup() -> (RequestContext, PhaseResult) {
            var r = bench.routed(bench.request(.GET, "/page"))
            #expect(ForwardHeadPhase.run(&r, loop: bench.loop).isNext)
            let result = CacheLookupPhase.run(&r, loop: bench.loop, now: bench.now)
            return (r, result)
        }
        let (first, firstResult) = lookup()
        #expect(firstResult.isNext)
        let key = try #require(first.fillKey)
        let (_, second) = lookup()
        guard case .hold(.coalesce(let waited)) = second else {
            Issue.record("expected to wait for the fetch, got \(second)")
            return
        }
        #expect(waited == key)

        // The first request's response is stored through the response phase.
        let response = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Type": "text/html", "Cache-Control": "max-age=2"])
        var fill = try #require(CacheFill(key: key, response: response, method: .GET, config: first.routed.config.cache, allocator: ByteBufferAllocator()))
        let appended = fill.append(ByteBuffer(string: "hello"))
        #expect(appended)
        fill.store(in: &bench.loop.sites[0].cache, now: bench.now)
        bench.loop.finishFill(key)

        let (_, hit) = lookup()
        guard case .respond(.cached(let entry, let stale)) = hit else {
            Issue.record("expected a cached answer, got \(hit)")
            return
        }
        #expect(!stale)
        #expect(entry.headers.first(name: "content-length") == "5")

        bench.eventLoop.advanceTime(by: .seconds(3))
        let (_, old) = lookup()
        guard case .respond(.cached(_, let isStale)) = old else {
            Issue.record("expected a stale answer, got \(old)")
            return
        }
        #expect(isStale)
        // The background refresh is under way (the origin here refuses, so it ends).
        #expect(bench.loop.isFilling(key) || bench.loop.backgroundFetches.isEmpty)
    }

    @Test func cacheFillGivesUpOnObjectsLargerThanTheLimit() throws {
        var config = CacheConfig()
        config.maxObjectBytes = 4
        let response = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Cache-Control": "max-age=60"])
        var fill = try #require(CacheFill(key: "k", response: response, method: .GET, config: config, allocator: ByteBufferAllocator()))
        let small = fill.append(ByteBuffer(string: "abc"))
        let tooLarge = fill.append(ByteBuffer(string: "de"))
        #expect(small)
        #expect(!tooLarge)
        let private_ = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Cache-Control": "private"])
        #expect(CacheFill(key: "k", response: private_, method: .GET, config: config, allocator: ByteBufferAllocator()) == nil)
    }

    @Test func thePipelineStopsAtTheFirstPhaseThatAnswers() {
        let bench = PhaseBench { $0.sites[0].fingerprints.deny = [FingerprintPattern("t13d1516h2_*")!] }
        var denied = bench.request(fingerprint: "t13d1516h2_8daaf6152771_02713d6af862")
        #expect(RequestPipeline.run(&denied, loop: bench.loop, now: bench.now).refusal == .fingerprintDenied)
        // Refused before the rate limits: no identity was looked up, no head was built.
        #expect(denied.forwardHead == nil)
        var fine = bench.request(.GET, "/x")
        #expect(RequestPipeline.run(&fine, loop: bench.loop, now: bench.now).isNext)
        #expect(fine.forwardHead?.uri == "/x")
        #expect(fine.fillKey != nil)
    }
}
