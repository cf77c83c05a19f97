import Foundation
import RampartCore
import RampartDemoOrigin
import RampartDrill
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Regression tests for the outside review's findings, through the real binary: what an attacker
/// tried, and what each attempt gets now.
extension IntegrationTests {
@Suite(.serialized) struct SecurityTests {
    static let ua = "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"

    static func underAttack(origin: Int, challenge: String = "{ tier: cookie }", extra: String = "", listeners: String = "  - address: 127.0.0.1:0") -> String {
        """
        listeners:
        \(listeners)
        sites:
          - name: www
            hosts: [example.org]
            origins: [127.0.0.1:\(origin)]
            health_check: { enabled: false }
            mode: under_attack
            challenge: \(challenge)
        \(extra)
        """
    }

    /// A demo origin and a gateway in front of it, for one test; `stop()` when done.
    final class Stand: @unchecked Sendable {
        let origin: DemoOrigin
        let gateway: GatewayProcess
        let ports: [Int]
        var port: Int { ports[0] }

        private init(origin: DemoOrigin, gateway: GatewayProcess, ports: [Int]) {
            (self.origin, self.gateway, self.ports) = (origin, gateway, ports)
        }

        /// Starts both; `yaml` gets the origin's port. With `underAttack`, waits until the site's
        /// mode (fixed in the config) is in force.
        static func start(listeners: Int = 1, extraArguments: [String] = [], underAttack: Bool = false, _ yaml: (Int) -> String) async throws -> Stand {
            let origin = DemoOrigin()
            let originPort = try await origin.start()
            let gw = try GatewayProcess(yaml: yaml(originPort), extraArguments: extraArguments)
            let stand = Stand(origin: origin, gateway: gw, ports: try gw.waitUntilListening(count: listeners))
            if underAttack { #expect(eventually { gw.stderrText.contains("to=under_attack") }) }
            return stand
        }

        func stop() {
            gateway.stop()
            let origin = self.origin
            Task { await origin.stop() }
        }
    }

    /// One catch-all site without health checks (so the origin counts only the tests' requests).
    static func plain(origin: Int, listener: String = "  - address: 127.0.0.1:0") -> String {
        """
        listeners:
        \(listener)
        sites:
          - name: default
            hosts: ["*"]
            origins: [127.0.0.1:\(origin)]
            health_check: { enabled: false }
        """
    }

    /// Under attack, the cookie check sends a client back to the same place on this host: never
    /// to another host by a scheme-relative path (`//evil`) or a backslash (`/\evil`).
    @Test func theCookieCheckNeverRedirectsToAnotherHost() async throws {
        let stand = try await Stand.start(underAttack: true) { Self.underAttack(origin: $0) }
        defer { stand.stop() }
        let port = stand.port

        let first = try #require(try RawClient(port: port, source: "127.0.3.1").request("GET", "//evil.example/", headers: [Self.ua]))
        #expect(first.status == 302)
        let location = try #require(first.header("location"))
        #expect(location == "/evil.example/")
        #expect(!location.hasPrefix("//") && !location.hasPrefix("/\\"))
        let backslash = try #require(try RawClient(port: port, source: "127.0.3.2").request("GET", "/\\evil.example/", headers: [Self.ua]))
        #expect(backslash.status == 400)
        #expect(backslash.header("location") == nil)
        let encoded = try #require(try RawClient(port: port, source: "127.0.3.3").request("GET", "/%2F%2Fevil.example/", headers: [Self.ua]))
        if let l = encoded.header("location") { #expect(!l.hasPrefix("//") && !l.hasPrefix("/\\")) }
    }

    /// Unknown keys and bearer tokens earn nothing under attack; a configured key passes. Exempt
    /// paths match whole segments; dot segments are resolved before the rules see the path.
    @Test func unknownKeysExemptPrefixesAndDotSegmentsDoNotSkipTheChallenge() async throws {
        let stand = try await Stand.start(underAttack: true) {
            Self.underAttack(origin: $0, extra: "    api_keys: [tax-software-key-0001]\n    bearer_credentials: true")
        }
        defer { stand.stop() }
        let port = stand.port
        func status(_ path: String, _ headers: [String] = [], source: String) throws -> Int {
            try RawClient(port: port, source: source).request("GET", path, headers: [Self.ua] + headers)?.status ?? 0
        }
        // Under attack an unknown key from a source the origin has not vouched for is refused
        // outright (429 failed_credentials): it does not skip anything.
        #expect(try status("/echo", ["Authorization: Bearer 6b1f0c1e9a7d"], source: "127.0.4.1") == 429)
        #expect(try status("/echo", ["X-API-Key: random-key-424242"], source: "127.0.4.2") == 429)
        #expect(try status("/echo", ["X-API-Key: tax-software-key-0001"], source: "127.0.4.3") == 200)
        #expect(try status("/healthz", source: "127.0.4.4") == 200)
        #expect(try status("/health/live", source: "127.0.4.5") != 302)
        #expect(try status("/healthcare-portal", source: "127.0.4.6") == 302)
        #expect(try status("/api/../echo", source: "127.0.4.7") == 302)
        #expect(try status("/api/%2e%2e/echo", source: "127.0.4.8") == 302)
        #expect(try status("/api//status", source: "127.0.4.9") != 302)
    }

    /// A proof-of-work answer is redeemed once per gateway, whichever event loop a connection
    /// lands on (the gateway runs one loop per core; connections are spread over them).
    @Test func aProofOfWorkAnswerIsRedeemedOnceAcrossEventLoops() async throws {
        let stand = try await Stand.start(extraArguments: ["--threads", "4"], underAttack: true) {
            Self.underAttack(origin: $0, challenge: "{ tier: pow, difficulty: 10 }")
        }
        defer { stand.stop() }
        let port = stand.port
        let page = try #require(try RawClient(port: port, source: "127.0.5.1").request("GET", "/news", headers: [Self.ua, "Accept: text/html"]))
        #expect(page.status == 403)
        let next = try #require(await DrillRunner.answerChallenge(page.text, javaScript: true))
        var statuses: [Int] = []
        for _ in 0..<8 {
            statuses.append(try RawClient(port: port, source: "127.0.5.1").request("GET", next, headers: [Self.ua])?.status ?? 0)
        }
        #expect(statuses.filter { $0 == 302 }.count == 1, "\(statuses)")
        #expect(statuses.first == 302)
    }

    /// A clearance earned over IPv4 is not good over IPv6 (and the other way round): a family
    /// slot is never filled in on first use.
    @Test func aClearanceDoesNotCrossAddressFamilies() async throws {
        let stand = try await Stand.start(listeners: 2, underAttack: true) {
            Self.underAttack(origin: $0, listeners: "  - address: 127.0.0.1:0\n  - address: \"[::1]:0\"")
        }
        defer { stand.stop() }
        let ports = stand.ports
        let first = try #require(try RawClient(port: ports[0], source: "127.0.6.1").request("GET", "/echo", headers: [Self.ua]))
        #expect(first.status == 302)
        let cookie = try #require(DefenceTests.clearance(first))
        #expect(try RawClient(port: ports[0], source: "127.0.6.1").request("GET", "/echo", headers: [Self.ua, "Cookie: \(cookie)"])?.status == 200)
        // The same cookie over IPv6: challenged again, not served.
        let (code, out) = try runProgram([
            "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: example.org", "-H", String(Self.ua),
            "-H", "Cookie: \(cookie)", "http://[::1]:\(ports[1])/echo",
        ])
        #expect(code == 0)
        #expect(out.trimmingCharacters(in: .whitespacesAndNewlines) == "302")
    }

    /// Malformed requests count toward a ban like any other abuse.
    @Test func aSourceSendingMalformedRequestsIsBanned() async throws {
        let stand = try await Stand.start { Self.plain(origin: $0) }
        defer { stand.stop() }
        let (port, gw) = (stand.port, stand.gateway)
        var answered400 = 0
        for _ in 0..<150 {
            guard let c = try? RawClient(port: port, source: "127.0.7.7") else { continue }
            c.send("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
            if c.readResponse()?.status == 400 { answered400 += 1 }
            if gw.stderrText.contains("source banned") { break }
        }
        #expect(answered400 > 0)
        #expect(eventually { gw.stderrText.contains("source banned") })
        // Banned: closed at accept, no answer at all; another source is served.
        let banned = try RawClient(port: port, source: "127.0.7.7")
        banned.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(banned.readResponse() == nil)
        #expect(try RawClient(port: port, source: "127.0.7.8").request("GET", "/", host: "a")?.status == 200)
    }

    /// What the origin receives: one request, the normalised target, the routed host, the one
    /// framing the gateway decided, no client-planted identity or routing headers.
    @Test func theOriginReceivesExactlyTheRequestTheGatewayDecidedOn() async throws {
        let stand = try await Stand.start { Self.plain(origin: $0) }
        defer { stand.stop() }
        let (port, origin) = (stand.port, stand.origin)
        let before = origin.stats.requests
        // The review's smuggling reproduction: the body must reach the origin as this request's body.
        let smuggled = "GET /SMUGGLED HTTP/1.1\r\nHost: evil.test\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"
        let c = try RawClient(port: port, source: "127.0.8.1")
        c.send("GET /echo HTTP/1.1\r\nHost: site.test\r\nContent-Length: \(smuggled.utf8.count)\r\nConnection: content-length\r\n\r\n\(smuggled)")
        let reply = try #require(c.readResponse())
        #expect(reply.status == 200)
        #expect(reply.json["body_bytes"] as? Int == smuggled.utf8.count)
        #expect(reply.echoed("content-length") == String(smuggled.utf8.count))
        let after = try #require(c.request("GET", "/echo", host: "site.test"))
        #expect(after.json["uri"] as? String == "/echo")
        #expect(origin.stats.requests == before + 2)

        // TRACE is refused whatever it carries.
        #expect(try RawClient(port: port, source: "127.0.8.2").request("TRACE", "/echo", host: "site.test")?.status == 405)
        // Connection cannot strip Host; the absolute-form authority is the Host the origin sees.
        let host = try #require(try RawClient(port: port, source: "127.0.8.3").request("GET", "/echo", host: "site.test", headers: ["Connection: host"]))
        #expect(host.echoed("host") == "site.test")
        let absolute = try #require(try RawClient(port: port, source: "127.0.8.4").request("GET", "http://x.test/echo", host: "y.test"))
        #expect(absolute.echoed("host") == "x.test")
        #expect(absolute.echoed("x-forwarded-host") == "x.test")
        // Normalised target; identity and routing headers stripped or set by the gateway.
        let normal = try #require(try RawClient(port: port, source: "127.0.8.5").request(
            "GET", "/api/../a//b/./%65cho/../echo?q=%2e", host: "site.test",
            headers: ["X-Real-IP: 6.6.6.6", "Forwarded: for=6.6.6.6", "X-Original-URL: /admin", "X-HTTP-Method-Override: DELETE"]
        ))
        #expect(normal.status == 404 || normal.status == 200)
        let echo = try #require(try RawClient(port: port, source: "127.0.8.5").request(
            "GET", "/x/../echo", host: "site.test",
            headers: ["X-Real-IP: 6.6.6.6", "Forwarded: for=6.6.6.6", "X-Original-URL: /admin", "X-HTTP-Method-Override: DELETE", "X-Rewrite-URL: /admin"]
        ))
        #expect(echo.json["uri"] as? String == "/echo")
        #expect(echo.echoed("x-real-ip") == "127.0.8.5")
        #expect(echo.echoed("forwarded") == nil)
        #expect(echo.echoed("x-original-url") == nil)
        #expect(echo.echoed("x-rewrite-url") == nil)
        #expect(echo.echoed("x-http-method-override") == nil)
        // HTTP/1.0 without Host still reaches the origin with one.
        let old = try RawClient(port: port, source: "127.0.8.6")
        old.send("GET /echo HTTP/1.0\r\n\r\n")
        let oldReply = try #require(old.readResponse())
        #expect(oldReply.status == 200)
        #expect(!(oldReply.echoed("host") ?? "").isEmpty)
        // HTTP/1.0 keep-alive asking for a chunked origin body: complete, then the connection closes.
        let keep = try RawClient(port: port, source: "127.0.8.7")
        keep.send("GET /stream?chunks=3&size=10 HTTP/1.0\r\nHost: site.test\r\nConnection: keep-alive\r\n\r\n")
        let streamed = try #require(keep.readResponse())
        #expect(streamed.status == 200)
        #expect(streamed.body.count == 30)
        #expect(streamed.header("connection")?.lowercased() == "close")
    }

    /// Over HTTP/2: a body on a GET reaches the origin framed (never as a second request), a bad
    /// `:method`, an absolute `:path` and an `:authority` that disagrees with `host` are refused,
    /// and every access-log line stays one valid JSON object whatever a client put in it.
    @Test func http2RequestsAreCheckedAndTheAccessLogCannotBeForged() async throws {
        let fixture = try await TLSTests.TLSFixture.make()
        defer { fixture.close() }
        let log = fixture.dir.appendingPathComponent("access.log").path
        let gw = try GatewayProcess(
            yaml: Self.plain(origin: fixture.originPort, listener: "  - address: 127.0.0.1:0\n    tls: { cert: \(fixture.cert), key: \(fixture.key) }"),
            extraArguments: ["--access-log", log]
        )
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("tools/h2_request.py").path
        func send(_ method: String, _ path: String, _ extra: [String] = []) throws -> String {
            let (code, out) = try runProgram(["python3", script, String(port), method, path] + extra)
            #expect(code == 0, "\(out)")
            return out.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let before = fixture.origin.stats.requests
        let smuggle = "GET /SMUGGLED HTTP/1.1\r\nHost: evil.test\r\n\r\n"
        #expect(try send("GET", "/echo", ["--data", smuggle]) == "200")
        #expect(try send("POST", "/upload", ["--data", "abc"]) == "200")
        #expect(fixture.origin.stats.requests == before + 2)
        #expect(try send(#"X","client":"9.9.9.9"#, "/echo") == "400")
        #expect(try send("GET", "http://other.test/echo") == "400")
        #expect(try send("GET", "/echo", ["--header", "host:other.test"]) == "400")
        #expect(try send("GET", "/echo", ["--header", #"user-agent:a","client":"9.9.9.9","x":"\"#]) == "200")
        #expect(fixture.origin.stats.requests == before + 3)
        #expect(eventually { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").count >= 3 })
        let lines = (try String(contentsOfFile: log, encoding: .utf8)).split(separator: "\n")
        for line in lines {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object != nil, "not one JSON object: \(line)")
            #expect(object?["client"] as? String != "9.9.9.9", "\(line)")
        }
        #expect(gw.stderrText.contains("HTTP/2 request"))
    }
}
}
