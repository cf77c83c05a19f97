import Foundation
import RampartCore
import RampartDemoOrigin
import RampartDrill
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Detection and challenges through the real binary: what a browser, a client without
/// JavaScript, a cookie-less flood and a forger each get.
extension IntegrationTests {
@Suite(.serialized) struct DefenceTests {
    static func yaml(origin: Int, site: String) -> String {
        """
        listeners:
          - address: 127.0.0.1:0
        sites:
          - name: www
            hosts: [example.org]
            origins: [127.0.0.1:\(origin)]
            health_check: { enabled: false }
        \(site)
        """
    }

    /// The value of the clearance cookie a response sets.
    static func clearance(_ r: HTTPReply) -> String? {
        r.headers.first { $0.0 == "set-cookie" && $0.1.hasPrefix("__rampart=") }.map { String($0.1.split(separator: ";")[0]) }
    }

    @Test func underAttackCookieCheckLetsCookieKeepersInAndRefusesFormPostsWithout() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let gw = try GatewayProcess(yaml: Self.yaml(origin: originPort, site: "    mode: under_attack\n    challenge: { tier: cookie }"))
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        #expect(eventually { gw.stderrText.contains("to=under_attack") })

        let browser = try RawClient(port: port, source: "127.0.0.20")
        let ua = "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"
        let first = try #require(browser.request("GET", "/news?id=7", headers: [ua]))
        #expect(first.status == 302)
        #expect(first.header("location") == "/news?id=7")
        #expect(first.header("x-rampart-challenge") == "cookie")
        let cookie = try #require(Self.clearance(first))
        let before = origin.stats.requests
        // The same URL with the cookie: the origin's page, without the gateway's cookie in it.
        let page = try #require(browser.request("GET", "/echo", headers: [ua, "Cookie: theme=dark; \(cookie)"]))
        #expect(page.status == 200)
        #expect(page.echoed("cookie") == "theme=dark")
        #expect(origin.stats.requests == before + 1)
        // A form post with the clearance goes through; without one it is refused with 429, not a page.
        #expect(browser.request("POST", "/login", headers: [ua, "Cookie: \(cookie)"], body: "u=a&p=b")?.status == 200)
        let bot = try RawClient(port: port, source: "127.0.0.21")
        let refused = try #require(bot.request("POST", "/login", headers: [ua], body: "u=a&p=b"))
        #expect(refused.status == 429)
        #expect(refused.header("retry-after") != nil)
        // The cookie is bound to the agent and the subnet: copied elsewhere it is refused and counted.
        let thief = try RawClient(port: port, source: "127.0.9.21")
        #expect(thief.request("GET", "/echo", headers: [ua, "Cookie: \(cookie)"])?.status == 302)
        #expect(browser.request("GET", "/echo", headers: ["User-Agent: curl/8.5", "Cookie: \(cookie)"])?.status == 302)
        #expect(browser.request("GET", "/echo", headers: [ua, "Cookie: __rampart=AAAAforged"])?.status == 302)
        #expect(eventually { gw.stderrText.contains("reason=challenge_failed") })
        // (The refused post's connection was closed: its body was never read.)
        let bot2 = try RawClient(port: port, source: "127.0.0.21")
        // Machine routes are never challenged; a key the site does not know earns nothing: under
        // attack, from a source the origin has not vouched for, it is refused (failed_credentials).
        #expect(bot2.request("GET", "/api/status", headers: [ua])?.status == 200)
        #expect(bot2.request("GET", "/echo", headers: [ua, "X-API-Key: partner-software-0001"])?.status == 429)
        // A client that keeps no cookies is not redirected forever: after a few tries it gets the page.
        var statuses: [Int] = []
        for _ in 0..<10 { statuses.append(bot2.request("GET", "/", headers: [ua, "Accept: text/html"])?.status ?? 0) }
        #expect(statuses.prefix(3).allSatisfy { $0 == 302 })
        #expect(statuses.last == 403)
    }

    @Test func proofOfWorkAndTheNoScriptWaitBothEarnAClearance() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let gw = try GatewayProcess(
            yaml: Self.yaml(origin: originPort, site: "    mode: under_attack\n    challenge: { tier: pow, difficulty: 12, wait: 2s }")
        )
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        #expect(eventually { gw.stderrText.contains("to=under_attack") })
        let ua = "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"

        // A browser with JavaScript: the page's puzzle, solved as its script does.
        let js = try RawClient(port: port, source: "127.0.0.30")
        let page = try #require(js.request("GET", "/news", headers: [ua, "Accept: text/html", "Accept-Language: lt,en;q=0.5"]))
        #expect(page.status == 403)
        #expect(page.header("x-rampart-challenge") == "pow")
        let html = String(decoding: page.body, as: UTF8.self)
        #expect(html.contains("lang=\"lt\""))
        let next = try #require(await DrillRunner.answerChallenge(html, javaScript: true))
        #expect(next.hasPrefix("/.rampart/pow?r=/news&c="))
        // A wrong answer is refused.
        let wrong = String(next[..<next.range(of: "&a=")!.upperBound]) + "x"
        #expect(js.request("GET", wrong, headers: [ua])?.status == 403)
        let answered = try #require(js.request("GET", next, headers: [ua]))
        #expect(answered.status == 302)
        #expect(answered.header("location") == "/news")
        let cookie = try #require(Self.clearance(answered))
        #expect(js.request("GET", "/", headers: [ua, "Cookie: \(cookie)"])?.status == 200)
        // The same answer again is a replay.
        #expect(js.request("GET", next, headers: [ua])?.status == 403)

        // A browser without JavaScript: the <noscript> refresh, on time.
        let plain = try RawClient(port: port, source: "127.0.1.31")
        let page2 = try #require(plain.request("GET", "/", headers: [ua, "Accept: text/html"]))
        let html2 = String(decoding: page2.body, as: UTF8.self)
        let waitURL = try #require(html2.range(of: "content=\"2;url=").map { html2[$0.upperBound...].prefix { $0 != "\"" } })
            .replacingOccurrences(of: "&amp;", with: "&")
        let early = try #require(plain.request("GET", waitURL, headers: [ua]))
        #expect(early.status == 200)  // too early: the wait page again
        #expect(Self.clearance(early) == nil)
        let started = Date()
        let waited = try #require(await DrillRunner.answerChallenge(html2, javaScript: false))
        #expect(Date().timeIntervalSince(started) >= 1.9)
        let through = try #require(plain.request("GET", waited, headers: [ua]))
        #expect(through.status == 302)
        let cookie2 = try #require(Self.clearance(through))
        #expect(plain.request("GET", "/", headers: [ua, "Cookie: \(cookie2)"])?.status == 200)
    }

    @Test func aSessionTheOriginIssuedPassesChallengesAtOnePersonsRate() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let gw = try GatewayProcess(
            yaml: Self.yaml(origin: originPort, site: "    challenge: { clearance_rate: 1/s, clearance_burst: 10 }\n    session_cookies: [sessionid]"),
            extraArguments: ["--threads", "1"]
        )
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        let (admin, token) = try gw.adminLink()
        let ua = "User-Agent: Mozilla/5.0 Firefox/140.0"
        // Log in: the origin sets `sessionid`, the gateway binds it with its companion cookie.
        let home = try RawClient(port: port, source: "127.0.0.50")
        let login = try #require(home.request("POST", "/login", headers: [ua], body: "u=a&p=b"))
        let cookies = login.headers.filter { $0.0 == "set-cookie" }.map { String($0.1.split(separator: ";")[0]) }
        #expect(cookies.contains { $0.hasPrefix("sessionid=") })
        #expect(cookies.contains { $0.hasPrefix("__rampart_m=") })
        let session = cookies.joined(separator: "; ")
        for _ in 0..<2 { #expect(home.request("GET", "/account", headers: [ua, "Cookie: \(session)"])?.status == 200) }

        let auth = ["Authorization: Bearer \(token)", "Content-Type: application/json"]
        #expect(try RawClient(port: admin).request("PUT", "/api/sites/www/mode", headers: auth, body: #"{"mode":"under_attack"}"#)?.status == 200)
        // From another network, the session passes without a challenge; without it, a challenge.
        let away = try RawClient(port: port, source: "127.0.8.50")
        #expect(eventually { away.request("GET", "/news", headers: [ua])?.status == 302 })
        #expect(away.request("GET", "/news", headers: [ua, "Cookie: \(session)"])?.status == 200)
        // The cookie's name with a made-up value, or the session without its companion: a challenge.
        #expect(away.request("GET", "/news", headers: [ua, "Cookie: sessionid=made-up"])?.status == 302)
        #expect(away.request("GET", "/news", headers: [ua, "Cookie: \(cookies.first { $0.hasPrefix("sessionid=") }!)"])?.status == 302)
        // But a flood carried on that one session is cut to one person's share.
        var statuses: [Int] = []
        for _ in 0..<30 { statuses.append(away.request("GET", "/news", headers: [ua, "Cookie: \(session)"])?.status ?? 0) }
        #expect(statuses.filter { $0 == 200 }.count <= 12)
        #expect(statuses.contains(429))
    }

    @Test func aFloodFromManySourcesRaisesTheModeWithinSecondsAndItReturnsToNormal() async throws {
        var originConfig = DemoOrigin.Configuration()
        originConfig.concurrency = 20
        originConfig.serviceTime = .milliseconds(20)
        originConfig.countedRanges = [DrillSafety.legitRange, DrillSafety.attackRange]
        let origin = DemoOrigin(configuration: originConfig)
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let gw = try GatewayProcess(
            yaml: Self.yaml(
                origin: originPort,
                site: "    detection: { min_rate: 20/s, calm_under_attack: 3s, calm_elevated: 3s }"
            )
        )
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        // S2 in small: 400 sources on 127.0.0.0/8, a random query string each, a few seconds.
        var plan = DrillPlan(
            target: try .init(ipAddress: "127.0.0.1", port: port),
            originStats: try .init(ipAddress: "127.0.0.1", port: originPort),
            scenario: .s2
        )
        plan.warmup = 3
        plan.attack = 6
        plan.cooldown = 1
        plan.originCapacity = 1000
        plan.intensity = 0.4
        plan.legitUsers = 5
        plan.apiClients = 0
        let report = await DrillRunner(plan: plan).run()
        let attackStart = Double(plan.warmup)
        let log = gw.stderrText
        #expect(log.contains("to=under_attack"), "\(log.suffix(2000))")
        // The flood was seen within 3 s of its start: count the drill seconds until the mode changed
        // (the log has wall-clock times; the drill's per-second record shows when the challenges began).
        let firstBlocked = report.timeline.first { Double($0.second) >= attackStart && $0.attackSent > 0 && Double($0.attackBlocked) > 0.5 * Double($0.attackSent) }
        #expect(firstBlocked != nil)
        if let firstBlocked { #expect(Double(firstBlocked.second) - attackStart <= 3) }
        // Once it was seen, the flood stopped reaching the origin; people kept getting their pages.
        #expect(report.leakageAfter5sPercent <= 1, "\(report.timeline.map { "\($0.second): \($0.originAttack)" })")
        #expect(
            report.attackWindow.successPercent >= 99,
            "\(report.timeline.map { "\($0.second): ok \($0.legitOK) failed \($0.legitFailed) sent \($0.attackSent) blocked \($0.attackBlocked)" })"
        )
        // And the site calms down by itself once the flood ends.
        #expect(eventually(timeout: 20) { gw.stderrText.contains("from=elevated manual=false reason=calm") })
    }
}
}
