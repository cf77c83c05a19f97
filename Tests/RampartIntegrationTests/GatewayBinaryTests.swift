import Foundation
import RampartCore
import RampartDemoOrigin
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The real `rampart` binary on loopback in front of the demo origin.
extension IntegrationTests {
@Suite(.serialized) struct GatewayBinaryTests {
    static func yaml(origin: Int, listener: String = "", top: String = "", site: String = "") -> String {
        """
        listeners:
          - address: 127.0.0.1:0
        \(listener)
        \(top)
        sites:
          - name: www
            hosts: [example.org]
            origins: [127.0.0.1:\(origin)]
            health_check: { path: /healthz, interval: 1s }
        \(site)
        """
    }

    @Test func proxiesWithKeepAliveStreamingAndNeverForwardsUnknownHosts() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let gw = try GatewayProcess(yaml: Self.yaml(origin: originPort))
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]

        let c = try RawClient(port: port)
        let first = try #require(c.request("GET", "/echo"))
        #expect(first.status == 200)
        #expect(first.echoed("x-forwarded-for") == "127.0.0.1")
        #expect(first.echoed("x-forwarded-proto") == "http")
        #expect(first.echoed("x-forwarded-host") == "example.org")
        #expect(first.echoed("via") == "1.1 rampart")
        #expect(first.echoed("x-request-id")?.count == 15)
        #expect(first.header("connection") == nil)

        // Same connection: hop-by-hop headers never reach the origin.
        let second = try #require(c.request("GET", "/echo", headers: ["Connection: keep-alive, X-Secret", "X-Secret: 1", "Keep-Alive: timeout=5"]))
        #expect(second.status == 200)
        #expect(second.echoed("x-secret") == nil)
        #expect(second.echoed("keep-alive") == nil)
        #expect(second.echoed("connection") == nil)

        // A streamed (chunked) response of 200 KiB arrives whole, twice (the second time the
        // pooled origin connection must not be left paused by the first one's back-pressure).
        for _ in 0..<2 {
            let stream = try #require(c.request("GET", "/stream?chunks=50&size=4096"))
            #expect(stream.status == 200)
            #expect(stream.body.count == 50 * 4096)
        }

        // Request bodies: fixed length, chunked, and Expect: 100-continue.
        let body = String(repeating: "b", count: 100_000)
        let upload = try #require(c.request("POST", "/upload", body: body))
        #expect(upload.json["received"] as? Int == 100_000)
        c.send("POST /upload HTTP/1.1\r\nHost: example.org\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n")
        #expect(c.readResponse()?.json["received"] as? Int == 8)
        c.send("PUT /upload HTTP/1.1\r\nHost: example.org\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        let interim = try #require(c.readResponse())
        #expect(interim.status == 100)
        c.send("data")
        let final = try #require(c.readResponse())
        #expect(final.status == 200)
        #expect(final.json["received"] as? Int == 4)

        // Unknown host: 421, and the origin never sees it.
        let before = origin.stats.requests
        let misdirected = try #require(c.request("GET", "/echo", host: "attacker.example"))
        #expect(misdirected.status == 421)
        #expect(misdirected.text.contains("Request ID"))
        #expect(!misdirected.text.contains("127.0.0.1"))
        #expect(origin.stats.requests == before)

        // HEAD gets headers only, and the connection stays usable.
        let head = try #require(c.request("HEAD", "/"))
        #expect(head.status == 200)
        #expect(try #require(c.request("GET", "/healthz")).text == "ok\n")
    }

    @Test func spreadsOverOriginsAndRoutesAroundDeadOnes() async throws {
        var counted = DemoOrigin.Configuration()
        counted.countedRanges = [CIDR("127.0.0.0/8")!]  // requests through the gateway carry X-Forwarded-For
        let a = DemoOrigin(configuration: counted)
        let b = DemoOrigin(configuration: counted)
        let pa = try await a.start()
        let pb = try await b.start()
        defer { Task { await a.stop() } }
        let yaml = """
            listeners:
              - address: 127.0.0.1:0
            sites:
              - name: www
                hosts: [example.org]
                balance: round_robin
                origins: [127.0.0.1:\(pa), 127.0.0.1:\(pb)]
                health_check: { path: /healthz, interval: 200ms, unhealthy_after: 2 }
            """
        let gw = try GatewayProcess(yaml: yaml)
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]

        for _ in 0..<20 { #expect(try RawClient(port: port).request("GET", "/echo")?.status == 200) }
        #expect(a.stats.perRange[0] >= 5)
        #expect(b.stats.perRange[0] >= 5)

        // One origin dies: every request still succeeds (the failed connect moves on to the other).
        await b.stop()
        for _ in 0..<20 { #expect(try RawClient(port: port).request("GET", "/echo")?.status == 200) }
        #expect(eventually { gw.stderrText.contains("origin is down") })

        // Both down: a clear 503 with Retry-After, never a hang.
        await a.stop()
        let reply = try #require(try RawClient(port: port).request("GET", "/echo", headers: ["Accept: application/json"]))
        #expect(reply.status == 503)
        #expect(reply.header("retry-after") == "5")
        #expect(reply.json["request_id"] is String)
    }

    @Test func floodingSourceIsRateLimitedWhileOthersPass() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let site = """
                rate_limits:
                  - {name: per-ip, rate: 5/s, burst: 10}
                  - {name: login, rate: 1/m, burst: 1, methods: [POST], path: /login, action: close}
            """
        let gw = try GatewayProcess(yaml: Self.yaml(origin: originPort, site: site))
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]

        let flooder = try RawClient(port: port, source: "127.0.0.20")
        var statuses: [Int] = []
        var retryAfter: String?
        for _ in 0..<40 {
            guard let r = flooder.request("GET", "/") else { break }
            statuses.append(r.status)
            if r.status == 429 { retryAfter = r.header("retry-after") }
        }
        #expect(statuses.count == 40, "the connection was dropped")
        #expect(statuses.filter { $0 == 200 }.count <= 12)
        #expect(statuses.filter { $0 == 429 }.count >= 25)
        #expect(retryAfter.flatMap(Int.init).map { $0 >= 1 } == true)
        // Someone else is not affected.
        let other = try RawClient(port: port, source: "127.0.0.21")
        for _ in 0..<5 { #expect(other.request("GET", "/")?.status == 200) }
        // The login rule closes the connection on its second POST.
        let guesser = try RawClient(port: port, source: "127.0.0.22")
        #expect(guesser.request("POST", "/login", body: "u=a&p=b")?.status == 200)
        #expect(guesser.request("POST", "/login", body: "u=a&p=c") == nil)
    }

    @Test func cacheBustingFloodIsServedFromCacheAndStaleWhenTheOriginDies() async throws {
        var config = DemoOrigin.Configuration()
        config.countedRanges = [CIDR("127.0.0.0/8")!]
        let origin = DemoOrigin(configuration: config)
        let originPort = try await origin.start()
        // One event loop: the cache and coalescing are per loop, and this test counts origin requests.
        let gw = try GatewayProcess(yaml: Self.yaml(origin: originPort, site: "    rate_limits: []"), extraArguments: ["--threads", "1"])
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]

        // 300 requests for /?r=<random> within well under a second: one reaches the origin.
        let c = try RawClient(port: port)
        var hits = 0
        for i in 0..<300 {
            let r = try #require(c.request("GET", "/?r=\(i)"))
            #expect(r.status == 200)
            if r.header("x-cache") == "HIT" { hits += 1 }
        }
        #expect(origin.stats.perRange[0] <= 2, "cache-busting requests reached the origin")
        #expect(hits >= 298)

        // Concurrent misses for a slow page make one origin request (coalescing).
        let before = origin.stats.perRange[0]
        let clients = try (0..<8).map { _ in try RawClient(port: port) }
        for client in clients { client.send("GET /slow?ms=400&type=html HTTP/1.1\r\nHost: example.org\r\n\r\n") }
        for client in clients { #expect(client.readResponse()?.text == "slow 400ms\n") }
        #expect(origin.stats.perRange[0] - before == 1)

        // The origin dies: the page is still served, marked stale.
        await origin.stop()
        usleep(1_200_000)  // past the 1 s freshness
        let stale = try #require(try RawClient(port: port).request("GET", "/"))
        #expect(stale.status == 200)
        #expect(stale.header("x-cache") == "STALE")
        #expect(stale.text.contains("It works"))
    }

    @Test func theOriginNeverSeesMoreThanItsCap() async throws {
        var config = DemoOrigin.Configuration()
        config.concurrency = 100
        let origin = DemoOrigin(configuration: config)
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let yaml = """
            listeners:
              - address: 127.0.0.1:0
            sites:
              - name: www
                hosts: [example.org]
                origins: [{address: 127.0.0.1:\(originPort), max_connections: 3}]
                health_check: {enabled: false}
                rate_limits: []
            """
        let gw = try GatewayProcess(yaml: yaml, extraArguments: ["--threads", "1"])
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]

        let clients = try (0..<20).map { try RawClient(port: port, source: "127.0.2.\($0 + 1)") }
        for c in clients { c.send("GET /slow?ms=200 HTTP/1.1\r\nHost: example.org\r\n\r\n") }
        for c in clients { #expect(c.readResponse()?.status == 200) }
        #expect(origin.stats.requests == 20)
        #expect(origin.stats.peakConcurrent <= 3, "the origin saw \(origin.stats.peakConcurrent) requests at once")
    }

    /// The whole chain in the binary: refusals strike, the accept loop bans, new connections are
    /// closed unread. (Expiry, repeat lengths and restore run on virtual time in BanExpiryTests.)
    @Test func persistentFlooderIsBannedAtAccept() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let yaml = """
            listeners:
              - address: 127.0.0.1:0
            bans: {strikes: 5, strikes_per_second: 0, duration: 2s}
            sites:
              - name: www
                hosts: [example.org]
                origins: [127.0.0.1:\(originPort)]
                rate_limits: [{name: per-ip, rate: 1/s, burst: 2}]
            """
        let gw = try GatewayProcess(yaml: yaml, extraArguments: ["--threads", "1"])
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]

        let flooder = try RawClient(port: port, source: "127.0.0.66")
        var statuses: [Int] = []
        for _ in 0..<20 {
            guard let r = flooder.request("GET", "/api/x") else { break }
            statuses.append(r.status)
        }
        // Two pass, five refusals are tolerated, the sixth bans and ends the connection.
        #expect(statuses.prefix(2) == [200, 200])
        #expect(statuses.count <= 8)
        #expect(eventually(timeout: 3) { gw.stderrText.contains("source banned") })
        // New connections from the banned address are closed before anything is read.
        let again = try RawClient(port: port, source: "127.0.0.66")
        again.send("GET /api/x HTTP/1.1\r\nHost: example.org\r\n\r\n")
        #expect(again.readResponse() == nil)
        // Others are served.
        #expect(try RawClient(port: port, source: "127.0.0.67").request("GET", "/api/x")?.status == 200)
    }

    @Test func aSlowSmallUploadCostsTheOriginNothingUntilItIsComplete() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let gw = try GatewayProcess(yaml: Self.yaml(origin: originPort, site: "    health_check: {enabled: false}").replacingOccurrences(of: "    health_check: { path: /healthz, interval: 1s }\n", with: ""))
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]

        let slow = try RawClient(port: port)
        slow.send("POST /upload HTTP/1.1\r\nHost: example.org\r\nContent-Length: 10\r\n\r\nabc")
        usleep(500_000)
        #expect(origin.stats.headsReceived == 0, "the origin was handed an upload that had not arrived")
        slow.send("defghij")
        #expect(slow.readResponse()?.json["received"] as? Int == 10)
        #expect(origin.stats.requests == 1)
    }

    /// A one-at-a-time origin (250 ms a request) behind a one-loop gateway with `site` settings:
    /// `earn` runs first, then eight unknown clients fill the origin queue, then `ask` is timed.
    /// Returns its reply and how long it waited.
    static func queueJump(site: String, earn: (Int) throws -> Void, ask: (Int) throws -> HTTPReply?) async throws -> (HTTPReply?, Double) {
        var config = DemoOrigin.Configuration()
        config.concurrency = 1
        config.serviceTime = .milliseconds(250)
        let origin = DemoOrigin(configuration: config)
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let yaml = """
            listeners:
              - address: 127.0.0.1:0
            known_good: {successes: 2, min_age: 0s}
            sites:
              - name: www
                hosts: [example.org]
                origins: [{address: 127.0.0.1:\(originPort), max_connections: 1}]
                health_check: {enabled: false}
            \(site)
            """
        let gw = try GatewayProcess(yaml: yaml, extraArguments: ["--threads", "1"])
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        try earn(port)
        let strangers = try (0..<8).map { try RawClient(port: port, source: "127.0.0.\(90 + $0)") }
        for c in strangers { c.send("GET /api/x HTTP/1.1\r\nHost: example.org\r\n\r\n") }
        usleep(100_000)
        let started = Date()
        let reply = try ask(port)
        let waited = Date().timeIntervalSince(started)
        for c in strangers { #expect(c.readResponse()?.status == 200) }
        return (reply, waited)
    }

    @Test func knownGoodClientIsServedBeforeQueuedUnknownOnes() async throws {
        // A regular visitor (two successful answers from the origin) asks while the queue is full:
        // it goes to the head of the queue instead of waiting 2 s behind the strangers.
        var regular: RawClient?
        let (reply, waited) = try await Self.queueJump(
            site: "",
            earn: { port in
                regular = try RawClient(port: port, source: "127.0.0.40")
                for _ in 0..<2 { #expect(regular?.request("GET", "/api/me")?.status == 200) }
            },
            ask: { _ in regular?.request("GET", "/api/me") }
        )
        #expect(reply?.status == 200)
        #expect(waited < 0.9, "known-good client waited \(waited) s behind unknown ones")
    }

    @Test func aSessionTheOriginAcceptedKeepsPriorityFromANewAddress() async throws {
        // The same person on another network: the session cookie carries the priority.
        let (reply, waited) = try await Self.queueJump(
            site: "    session_cookies: [sessionid]",
            earn: { port in
                let home = try RawClient(port: port, source: "127.0.0.80")
                for _ in 0..<2 { #expect(home.request("GET", "/api/me", headers: ["Cookie: sessionid=s3cr3t"])?.status == 200) }
            },
            ask: { port in try RawClient(port: port, source: "127.0.0.81").request("GET", "/api/me", headers: ["Cookie: sessionid=s3cr3t"]) }
        )
        #expect(reply?.status == 200)
        #expect(waited < 0.9, "the session's holder waited \(waited) s behind unknown ones")
    }

    @Test func webSocketUpgradePassesThrough() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let gw = try GatewayProcess(yaml: Self.yaml(origin: originPort))
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]

        let c = try RawClient(port: port)
        c.send(
            "GET /ws HTTP/1.1\r\nHost: example.org\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        let switched = try #require(c.readResponse())
        #expect(switched.status == 101)
        #expect(switched.header("upgrade")?.lowercased() == "websocket")
        #expect(switched.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        // A masked text frame "hello" comes back unmasked from the echo origin, twice in a row.
        let mask: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
        let payload = Array("hello".utf8).enumerated().map { $0.element ^ mask[$0.offset % 4] }
        for _ in 0..<2 {
            c.send([0x81, 0x85] + mask + payload)
            #expect(c.readRaw(count: 7) == [0x81, 0x05] + Array("hello".utf8))
        }
        // Without an upgrade the same route is a plain request.
        let plain = try RawClient(port: port)
        #expect(plain.request("GET", "/ws")?.status == 200)
    }

    @Test func slowlorisIsCutAtTheHeaderDeadlineWhileOthersAreServed() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let gw = try GatewayProcess(yaml: Self.yaml(origin: originPort, listener: "    timeouts: { header: 1s }"))
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]

        let slow = try RawClient(port: port, source: "127.0.0.5")
        slow.send("GET / HTTP/1.1\r\nHost: example.org\r\n")
        let started = Date()
        var closed = false
        for i in 0..<20 {
            // A normal client is served while the slow one trickles headers.
            let normal = try RawClient(port: port)
            #expect(normal.request("GET", "/healthz")?.status == 200)
            if !slow.send("X-Trickle-\(i): a\r\n") || slow.waitForClose(timeout: 0.25) {
                closed = true
                break
            }
        }
        let elapsed = Date().timeIntervalSince(started)
        #expect(closed)
        #expect(elapsed < 3.5, "slow client held the connection for \(elapsed) s")
        #expect(elapsed > 0.8)
    }

    @Test func perAddressConnectionCapAndSmuggling() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let gw = try GatewayProcess(yaml: Self.yaml(origin: originPort, listener: "    limits: { max_connections_per_ip: 2 }"))
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]

        let a = try RawClient(port: port, source: "127.0.0.7")
        let b = try RawClient(port: port, source: "127.0.0.7")
        #expect(a.request("GET", "/healthz")?.status == 200)
        #expect(b.request("GET", "/healthz")?.status == 200)
        let third = try RawClient(port: port, source: "127.0.0.7")
        third.send("GET /healthz HTTP/1.1\r\nHost: example.org\r\n\r\n")
        #expect(third.readResponse() == nil, "a third connection from one address was served")
        let other = try RawClient(port: port, source: "127.0.0.8")
        #expect(other.request("GET", "/healthz")?.status == 200)

        let smuggles = [
            "POST /upload HTTP/1.1\r\nHost: example.org\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: example.org\r\n\r\n",
            "POST /upload HTTP/1.1\r\nHost: example.org\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
            "POST /upload HTTP/1.1\r\nHost: example.org\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: example.org\r\nX-Folded: a\r\n b\r\n\r\n",
        ]
        let before = origin.stats.requests
        for (i, request) in smuggles.enumerated() {
            let c = try RawClient(port: port, source: "127.0.1.\(i + 1)")
            c.send(request)
            let reply = c.readResponse()
            #expect(reply?.status == 400, "case \(i)")
            #expect(reply?.header("connection") == "close", "case \(i)")
            #expect(c.waitForClose(timeout: 2), "case \(i) left the connection open")
        }
        #expect(origin.stats.requests == before, "a smuggling attempt reached the origin")
    }

    @Test func proxyProtocolAndTrustedForwardedFor() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let yaml = """
            listeners:
              - address: 127.0.0.1:0
                proxy_protocol: true
              - address: 127.0.0.1:0
            trusted_proxies: [127.0.0.2/32]
            sites:
              - name: www
                hosts: [example.org]
                origins: [127.0.0.1:\(originPort)]
            """
        let gw = try GatewayProcess(yaml: yaml)
        defer { gw.stop() }
        let ports = try gw.waitUntilListening(count: 2)

        let v1 = try RawClient(port: ports[0])
        v1.send("PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n")
        #expect(v1.request("GET", "/echo")?.echoed("x-forwarded-for") == "203.0.113.7")

        var v2 = [UInt8](arrayLiteral: 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A)
        v2 += [0x21, 0x11, 0x00, 0x0C, 198, 51, 100, 9, 127, 0, 0, 1, 0x9C, 0x40, 0x00, 0x50]
        let c2 = try RawClient(port: ports[0])
        c2.send(v2)
        #expect(c2.request("GET", "/echo")?.echoed("x-forwarded-for") == "198.51.100.9")

        let missing = try RawClient(port: ports[0])
        missing.send("GET /echo HTTP/1.1\r\nHost: example.org\r\n\r\n")
        #expect(missing.readResponse() == nil)

        let untrusted = try RawClient(port: ports[1], source: "127.0.0.1")
        #expect(untrusted.request("GET", "/echo", headers: ["X-Forwarded-For: 6.6.6.6"])?.echoed("x-forwarded-for") == "127.0.0.1")
        let trusted = try RawClient(port: ports[1], source: "127.0.0.2")
        #expect(trusted.request("GET", "/echo", headers: ["X-Forwarded-For: 198.51.100.20"])?.echoed("x-forwarded-for") == "198.51.100.20, 127.0.0.2")
    }

    @Test func reloadKeepsServingOnABadFileAndDrainFinishesInFlightRequests() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let gw = try GatewayProcess(yaml: Self.yaml(origin: originPort))
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]

        #expect(try RawClient(port: port).request("GET", "/healthz", host: "new.example")?.status == 421)
        let extended = Self.yaml(origin: originPort).replacingOccurrences(of: "hosts: [example.org]", with: "hosts: [example.org, new.example]")
        try extended.write(to: gw.configURL, atomically: true, encoding: .utf8)
        gw.signal(SIGHUP)
        #expect(eventually { (try? RawClient(port: port).request("GET", "/healthz", host: "new.example")?.status) == 200 })

        try "listeners: [oops\n".write(to: gw.configURL, atomically: true, encoding: .utf8)
        gw.signal(SIGHUP)
        #expect(eventually { gw.stderrText.contains("reload refused") })
        #expect(try RawClient(port: port).request("GET", "/healthz", host: "new.example")?.status == 200)

        // SIGTERM while a slow request is in flight: it completes, then the process exits 0.
        let inFlight = try RawClient(port: port)
        inFlight.send("GET /slow?ms=1500 HTTP/1.1\r\nHost: example.org\r\n\r\n")
        usleep(300_000)
        gw.signal(SIGTERM)
        let reply = inFlight.readResponse()
        #expect(reply?.status == 200)
        #expect(reply?.text == "slow 1500ms\n")
        #expect(gw.waitForExit() == 0)
        #expect((try? RawClient(port: port)) == nil, "still accepting after drain")
    }

    @Test func drainWaitsForRequestsOnEveryListener() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let yaml = """
            listeners:
              - address: 127.0.0.1:0
              - address: 127.0.0.1:0
            sites:
              - name: www
                hosts: [example.org]
                origins: [127.0.0.1:\(originPort)]
            """
        let gw = try GatewayProcess(yaml: yaml)
        defer { gw.stop() }
        let ports = try gw.waitUntilListening(count: 2)
        let first = try RawClient(port: ports[0])
        let second = try RawClient(port: ports[1])
        // The longer request is on the second listener: the drain must wait for it too.
        first.send("GET /slow?ms=600 HTTP/1.1\r\nHost: example.org\r\n\r\n")
        second.send("GET /slow?ms=1800 HTTP/1.1\r\nHost: example.org\r\n\r\n")
        usleep(300_000)
        gw.signal(SIGTERM)
        #expect(first.readResponse()?.status == 200)
        #expect(second.readResponse()?.status == 200)
        #expect(gw.waitForExit() == 0)
    }

    @Test func checkReportsEveryProblemWithFileLineAndKey() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let bad = root.appendingPathComponent("Tests/RampartCoreTests/testdata/bad.yaml").path
        let check = try GatewayProcess(arguments: ["check", "--config", bad])
        #expect(check.waitForExit() == 1)
        #expect(check.stderrText.contains("bad.yaml:14:5: sites[0].balanse: unknown key (did you mean 'balance'?)"))
        #expect(check.stderrText.contains("bad.yaml:2:"))
        #expect(check.stderrText.contains("11 problem(s)") || check.stderrText.contains("problem(s)"))
        let good = try GatewayProcess(arguments: ["check", "--config", root.appendingPathComponent("examples/rampart.yaml").path])
        #expect(good.waitForExit() == 0)
    }
}
}
