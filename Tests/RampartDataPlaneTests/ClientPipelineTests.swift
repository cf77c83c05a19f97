import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import RampartCore
@testable import RampartDataPlane

/// Drives the real client pipeline (PROXY handler, decoder, pipeline handler, client handler)
/// through an `EmbeddedChannel`: no sockets, virtual time.
final class PipelineHarness {
    let channel = EmbeddedChannel()
    let loop: LoopContext

    init(config: GatewayConfig, proxyProtocol: Bool = false, peer: String = "127.0.0.1") throws {
        let runtime = try! RuntimeConfig(config, generation: 1)
        loop = LoopContext(eventLoop: channel.embeddedEventLoop, loopCount: 1, config: runtime, logger: Logger(label: "test"), secret: [UInt8](repeating: 7, count: 32))
        try channel.connect(to: SocketAddress(ipAddress: peer, port: 40000)).wait()
        let gate = NIOLoopBound(
            AcceptGate(limits: config.listeners[0].limits, proxyProtocol: proxyProtocol, loop: loop),
            eventLoop: channel.embeddedEventLoop
        )
        try Gateway.configureClientPipeline(channel: channel, context: loop, listener: 0, proxyProtocol: proxyProtocol, gate: gate)
        channel.pipeline.fireChannelActive()
    }

    func send(_ text: String) throws {
        try channel.writeInbound(ByteBuffer(string: text))
    }

    func send(_ bytes: [UInt8]) throws {
        try channel.writeInbound(ByteBuffer(bytes: bytes))
    }

    /// Everything the gateway wrote back so far, as text.
    func received() throws -> String {
        channel.embeddedEventLoop.run()
        var out = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            out += String(buffer: buffer)
        }
        return out
    }

    func count(_ reason: RejectReason) -> Int {
        loop.counters.rejections[LoopCounters.reasonIndex[reason]!]
    }

    var isOpen: Bool { channel.isActive }

    static func config(configure: (inout GatewayConfig) -> Void = { _ in }) -> GatewayConfig {
        var site = SiteConfig(name: "www", hosts: ["example.org"], origins: [OriginConfig(address: HostPort(host: "127.0.0.1", port: 1))])
        site.healthCheck.enabled = false
        var c = GatewayConfig(listeners: [ListenerConfig(address: HostPort(host: "127.0.0.1", port: 8080))], sites: [site])
        configure(&c)
        return c
    }
}

@Suite struct ClientPipelineTests {
    @Test func unknownHostGets421AndKeepsTheConnection() throws {
        let h = try PipelineHarness(config: PipelineHarness.config())
        try h.send("GET / HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n")
        let reply = try h.received()
        #expect(reply.hasPrefix("HTTP/1.1 421 Misdirected Request\r\n"))
        #expect(reply.contains("Request ID: "))
        #expect(!reply.lowercased().contains("connection: close"))
        #expect(h.isOpen)
        #expect(h.count(.unknownHost) == 1)
        // The same connection serves the next request.
        try h.send("GET / HTTP/1.1\r\nHost: other.example\r\nAccept: application/json\r\n\r\n")
        let second = try h.received()
        #expect(second.contains(#""status":421"#))
        #expect(second.contains("application/json"))
    }

    @Test(arguments: [
        ("POST / HTTP/1.1\r\nHost: example.org\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "cl+te"),
        ("POST / HTTP/1.1\r\nHost: example.org\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", "two lengths"),
        ("POST / HTTP/1.1\r\nHost: example.org\r\nContent-Length: 5x\r\n\r\nhello", "bad length"),
        ("POST / HTTP/1.1\r\nHost: example.org\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
        ("GET / HTTP/1.1\r\nHost: example.org\r\nX-A: 1\r\n  folded\r\n\r\n", "obs-fold"),
        ("GET / HTTP/1.1\r\nHost: example.org\r\nX-A: a\u{01}b\r\n\r\n", "control character"),
        ("POST / HTTP/1.1\r\nHost: example.org\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "coding list"),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "two hosts"),
    ])
    func smugglingAttemptsGet400AndClose(request: String, label: String) throws {
        let h = try PipelineHarness(config: PipelineHarness.config())
        try? h.send(request)
        let reply = try h.received()
        #expect(reply.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(label): \(reply.prefix(60))")
        #expect(reply.lowercased().contains("connection: close"), "\(label)")
        #expect(!h.isOpen, "\(label): connection left open")
    }

    @Test func oversizedHeadersGet431() throws {
        let h = try PipelineHarness(config: PipelineHarness.config { $0.listeners[0].limits.maxHeaderBytes = 1024 })
        try? h.send("GET / HTTP/1.1\r\nHost: example.org\r\nX-Big: \(String(repeating: "a", count: 2000))\r\n\r\n")
        #expect(try h.received().hasPrefix("HTTP/1.1 431"))
        #expect(h.count(.headerTooLarge) == 1)
    }

    @Test func oversizedBodyIsRefusedBeforeItIsRead() throws {
        let h = try PipelineHarness(config: PipelineHarness.config { $0.sites[0].limits.maxBodyBytes = 10 })
        try h.send("POST / HTTP/1.1\r\nHost: example.org\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
        let reply = try h.received()
        #expect(reply.hasPrefix("HTTP/1.1 413"))
        #expect(!reply.contains("100 Continue"))
        #expect(!h.isOpen)
    }

    @Test func slowlorisIsClosedAtTheHeaderDeadline() throws {
        let h = try PipelineHarness(config: PipelineHarness.config { $0.listeners[0].limits.headerTimeout = .seconds(5) })
        try h.send("GET / HTTP/1.1\r\nHost: exa")
        h.channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        try h.send("mple.org\r\nX-1: a\r\n")
        #expect(h.isOpen)
        h.channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!h.isOpen)
        #expect(h.count(.headerTimeout) == 1)
    }

    @Test func idleKeepAliveConnectionIsClosed() throws {
        let h = try PipelineHarness(config: PipelineHarness.config { $0.listeners[0].limits.idleTimeout = .seconds(3) })
        try h.send("GET / HTTP/1.1\r\nHost: unknown.example\r\n\r\n")
        _ = try h.received()
        h.channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(h.isOpen)
        h.channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!h.isOpen)
        #expect(h.count(.idleTimeout) == 1)
    }

    @Test func proxyProtocolSetsTheClientAddress() throws {
        let h = try PipelineHarness(config: PipelineHarness.config(), proxyProtocol: true)
        try h.send("PROXY TCP4 203.0.113.7 10.0.0.1 5000 80\r\nGET / HTTP/1.1\r\nHost: nowhere.example\r\n\r\n")
        #expect(try h.received().hasPrefix("HTTP/1.1 421"))
        let client = try h.channel.pipeline.syncOperations.handler(type: ClientHandler.self)
        #expect(client.peer == IPAddress("203.0.113.7"))
    }

    @Test func missingProxyHeaderClosesTheConnection() throws {
        let h = try PipelineHarness(config: PipelineHarness.config(), proxyProtocol: true)
        try? h.send("GET / HTTP/1.1\r\nHost: example.org\r\n\r\n")
        #expect(try h.received().isEmpty)
        #expect(!h.isOpen)
        #expect(h.count(.proxyProtocolMissing) == 1)
    }
}
