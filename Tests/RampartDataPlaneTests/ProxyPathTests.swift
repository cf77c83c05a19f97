import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import RampartCore
@testable import RampartDataPlane

/// Hands out embedded channels as origin connections, on the test's embedded loop, with the
/// handlers a real origin connection carries; or refuses, like a dead origin.
final class EmbeddedOriginConnector: OriginConnector {
    let loop: EmbeddedEventLoop
    private(set) var connections: [EmbeddedChannel] = []
    var refuse = false
    /// Origin ports that refuse connections (one dead origin among several).
    var refusedPorts: Set<Int> = []
    /// The origin ports connections were asked for, in order.
    private(set) var asked: [Int] = []

    init(loop: EmbeddedEventLoop) { self.loop = loop }

    func connect(_ target: OriginTarget, on eventLoop: any EventLoop) -> EventLoopFuture<any Channel> {
        asked.append(target.address.port)
        if refuse || refusedPorts.contains(target.address.port) {
            return eventLoop.makeFailedFuture(ChannelError.connectTimeout(target.timeout))
        }
        let channel = EmbeddedChannel(loop: loop)
        do {
            try addOriginHTTPHandlers(channel.pipeline.syncOperations)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: target.address.port)).wait()
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        connections.append(channel)
        return eventLoop.makeSucceededFuture(channel)
    }

    /// What the gateway wrote to origin connection `i` so far.
    func forwarded(_ i: Int = 0) throws -> String {
        loop.run()
        var out = ""
        while let buffer = try connections[i].readOutbound(as: ByteBuffer.self) { out += String(buffer: buffer) }
        return out
    }

    /// The origin answers on connection `i`.
    func answer(_ i: Int = 0, _ response: String) throws {
        try connections[i].writeInbound(ByteBuffer(string: response))
        loop.run()
    }
}

/// The gateway's client pipeline and origin pools on one embedded loop: several clients, origin
/// connections the test answers by hand, virtual time.
final class ProxyBench {
    let eventLoop = EmbeddedEventLoop()
    let loop: LoopContext
    let origin: EmbeddedOriginConnector
    private let config: GatewayConfig

    init(_ configure: (inout GatewayConfig) -> Void = { _ in }) throws {
        config = PipelineHarness.config(configure: configure)
        origin = EmbeddedOriginConnector(loop: eventLoop)
        loop = LoopContext(
            eventLoop: eventLoop, loopCount: 1, config: try RuntimeConfig(config, generation: 1), logger: Logger(label: "test"),
            secret: [UInt8](repeating: 7, count: 32), originConnector: origin
        )
    }

    /// A new client connection from `peer`.
    func client(_ peer: String = "198.51.100.7") throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(loop: eventLoop)
        try channel.connect(to: SocketAddress(ipAddress: peer, port: 40000)).wait()
        let gate = NIOLoopBound(AcceptGate(limits: config.listeners[0].limits, proxyProtocol: false, loop: loop), eventLoop: eventLoop)
        try Gateway.configureClientPipeline(channel: channel, context: loop, listener: 0, proxyProtocol: false, gate: gate)
        channel.pipeline.fireChannelActive()
        return channel
    }

    func send(_ channel: EmbeddedChannel, _ text: String) throws {
        try channel.writeInbound(ByteBuffer(string: text))
        eventLoop.run()
    }

    func received(_ channel: EmbeddedChannel) throws -> String {
        eventLoop.run()
        var out = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { out += String(buffer: buffer) }
        return out
    }

    static func get(_ path: String) -> String { "GET \(path) HTTP/1.1\r\nHost: example.org\r\nUser-Agent: test\r\n\r\n" }
    static let page = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nCache-Control: max-age=2\r\nContent-Length: 5\r\n\r\nhello"
}

@Suite struct ProxyPathTests {
    @Test func aRequestIsForwardedAnsweredAndTheOriginConnectionReused() throws {
        let bench = try ProxyBench()
        let client = try bench.client()
        try bench.send(client, "GET /a?x=1 HTTP/1.1\r\nHost: example.org\r\nCookie: session=9\r\n\r\n")
        let forwarded = try bench.origin.forwarded()
        #expect(forwarded.hasPrefix("GET /a?x=1 HTTP/1.1\r\n"))
        #expect(forwarded.contains("X-Forwarded-For: 198.51.100.7\r\n"))
        #expect(forwarded.contains("Host: example.org\r\n"))
        try bench.origin.answer(0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nok")
        let reply = try bench.received(client)
        #expect(reply.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(reply.hasSuffix("\r\n\r\nok"))
        #expect(!reply.lowercased().contains("keep-alive: timeout"))
        #expect(bench.loop.counters.proxied == 1)

        // The next request from another client takes the pooled connection.
        let second = try bench.client("198.51.100.8")
        try bench.send(second, "POST /form HTTP/1.1\r\nHost: example.org\r\nContent-Length: 3\r\n\r\nabc")
        #expect(bench.origin.connections.count == 1)
        let body = try bench.origin.forwarded()
        #expect(body.hasPrefix("POST /form HTTP/1.1\r\n"))
        #expect(body.contains("Content-Length: 3\r\n"))
        #expect(body.hasSuffix("\r\n\r\nabc"))
    }

    /// Many requests for one page while it is fetched: one origin request, every client answered,
    /// later ones from the cache.
    @Test func concurrentRequestsForOnePageCoalesceIntoOneFetchThenHitTheCache() throws {
        let bench = try ProxyBench()
        let clients = try (0..<5).map { try bench.client("198.51.100.\(10 + $0)") }
        for c in clients { try bench.send(c, ProxyBench.get("/news")) }
        #expect(bench.origin.connections.count == 1)
        let forwarded = try bench.origin.forwarded()
        #expect(forwarded.components(separatedBy: "GET /news").count == 2)
        try bench.origin.answer(0, ProxyBench.page)
        for c in clients {
            let reply = try bench.received(c)
            #expect(reply.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(reply.hasSuffix("hello"))
        }
        let late = try bench.client("198.51.100.30")
        try bench.send(late, ProxyBench.get("/news"))
        let hit = try bench.received(late)
        #expect(hit.contains("X-Cache: HIT\r\n"))
        #expect(try bench.origin.forwarded().isEmpty)
        #expect(bench.loop.counters.cacheHits >= 1)
    }

    /// Past its freshness a copy is served at once while one background fetch refreshes it; with
    /// the origin gone, the stale copy still beats an error page.
    @Test func staleCopiesAreServedWhileRefreshedAndWhenTheOriginIsDown() throws {
        let bench = try ProxyBench()
        let client = try bench.client()
        try bench.send(client, ProxyBench.get("/"))
        _ = try bench.origin.forwarded()
        try bench.origin.answer(0, ProxyBench.page)
        _ = try bench.received(client)

        bench.eventLoop.advanceTime(by: .seconds(3))
        try bench.send(client, ProxyBench.get("/"))
        let stale = try bench.received(client)
        #expect(stale.contains("X-Cache: STALE\r\n"))
        #expect(stale.hasSuffix("hello"))
        // The refresh went out on the pooled connection; its answer replaces the copy.
        #expect(try bench.origin.forwarded().hasPrefix("GET / HTTP/1.1\r\n"))
        try bench.origin.answer(0, ProxyBench.page.replacingOccurrences(of: "hello", with: "fresh"))
        try bench.send(client, ProxyBench.get("/"))
        let refreshed = try bench.received(client)
        #expect(refreshed.contains("X-Cache: HIT\r\n"))
        #expect(refreshed.hasSuffix("fresh"))

        // The origin dies (its connection closes, new ones are refused) and the copy expires.
        try bench.origin.connections[0].close().wait()
        bench.origin.refuse = true
        bench.eventLoop.advanceTime(by: .seconds(3))
        let other = try bench.client("198.51.100.9")
        try bench.send(other, "GET / HTTP/1.1\r\nHost: example.org\r\nCache-Control: no-cache\r\n\r\n")
        let fallback = try bench.received(other)
        #expect(fallback.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(fallback.hasSuffix("fresh"))
    }

    /// With the origin's one connection busy, an allow-listed client waiting behind unknown ones
    /// gets the connection first.
    @Test func aKnownGoodClientIsServedBeforeQueuedUnknownOnes() throws {
        let bench = try ProxyBench { config in
            config.sites[0].origins[0].maxConnections = 1
            config.sites[0].cache.enabled = false
            config.knownGood.allow = CIDRSet([CIDR("192.0.2.0/24")!])
        }
        let busy = try bench.client("198.51.100.1")
        try bench.send(busy, ProxyBench.get("/slow"))
        #expect(try bench.origin.forwarded().hasPrefix("GET /slow "))
        let unknown = try (0..<3).map { try bench.client("198.51.100.\(20 + $0)") }
        for (i, c) in unknown.enumerated() { try bench.send(c, ProxyBench.get("/unknown\(i)")) }
        let member = try bench.client("192.0.2.5")
        try bench.send(member, ProxyBench.get("/member"))
        #expect(bench.loop.sites[0].pools[0].queued == 4)

        try bench.origin.answer(0, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(try bench.received(busy).hasPrefix("HTTP/1.1 200 OK"))
        #expect(try bench.origin.forwarded().hasPrefix("GET /member "))
        try bench.origin.answer(0, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(try bench.received(member).hasPrefix("HTTP/1.1 200 OK"))
        #expect(try bench.origin.forwarded().hasPrefix("GET /unknown0 "))
    }

    /// Requests in flight when a reload removes their site, or reorders the sites and gives another
    /// one a new origin, finish under the site they started with; new requests see the new config.
    @Test func requestsInFlightFinishUnderTheirSiteAcrossAReloadThatRemovesAndReorders() throws {
        let bench = try ProxyBench { config in
            config.sites[0].cache.enabled = false
            var other = SiteConfig(name: "other", hosts: ["other.example"], origins: [OriginConfig(address: HostPort(host: "127.0.0.1", port: 2))])
            other.healthCheck.enabled = false
            other.cache.enabled = false
            config.sites.append(other)
        }
        let www = try bench.client("198.51.100.1")
        try bench.send(www, ProxyBench.get("/www"))
        let other = try bench.client("198.51.100.2")
        try bench.send(other, "GET /other HTTP/1.1\r\nHost: other.example\r\n\r\n")
        #expect(bench.origin.connections.count == 2)
        #expect(try bench.origin.forwarded(0).hasPrefix("GET /www "))
        #expect(try bench.origin.forwarded(1).hasPrefix("GET /other "))
        let wwwSite = bench.loop.sites[0]

        // Reload: "www" is gone; "other" comes first, with a new origin.
        var reloaded = bench.loop.config.source
        var moved = reloaded.sites[1]
        moved.origins = [OriginConfig(address: HostPort(host: "127.0.0.1", port: 4))]
        reloaded.sites = [moved]
        bench.loop.apply(try RuntimeConfig(reloaded, generation: 2), tls: [])

        try bench.origin.answer(0, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nwww")
        try bench.origin.answer(1, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nother")
        #expect(try bench.received(www).hasSuffix("\r\n\r\nwww"))
        #expect(try bench.received(other).hasSuffix("\r\n\r\nother"))
        // Each was counted by its own site, the removed one included.
        #expect(wwwSite.defence.traffic.latencyCount == 1)
        #expect(bench.loop.sites.map(\.name) == ["other"])
        #expect(bench.loop.sites[0].defence.traffic.latencyCount == 1)

        // New requests: the removed host is unknown now; "other" goes to its new origin.
        try bench.send(www, ProxyBench.get("/again"))
        #expect(try bench.received(www).hasPrefix("HTTP/1.1 421 "))
        try bench.send(other, "GET /again HTTP/1.1\r\nHost: other.example\r\n\r\n")
        #expect(bench.origin.connections.count == 3)
        #expect(bench.origin.connections[2].remoteAddress?.port == 4)
        #expect(try bench.origin.forwarded(2).hasPrefix("GET /again "))
    }

    /// A request that waits past the queue's limit gets a 503 with Retry-After, not silence.
    @Test func aRequestThatWaitsTooLongForTheOriginGets503() throws {
        let bench = try ProxyBench { config in
            config.sites[0].origins[0].maxConnections = 1
            config.sites[0].cache.enabled = false
        }
        let busy = try bench.client("198.51.100.1")
        try bench.send(busy, ProxyBench.get("/slow"))
        let waiting = try bench.client("198.51.100.2")
        try bench.send(waiting, ProxyBench.get("/waits"))
        bench.eventLoop.advanceTime(by: OriginPool.maxWait + .seconds(1))
        let reply = try bench.received(waiting)
        #expect(reply.hasPrefix("HTTP/1.1 503 "))
        #expect(reply.contains("Retry-After: 5\r\n"))
    }
}
