import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOSSL
import NIOTLS
import RampartCore

/// TLS termination and HTTP/2: certificates per listener and per site (by SNI), ALPN `h2` and
/// `http/1.1`, and the HTTP/2 flood budgets. Each HTTP/2 stream gets its own ``ClientHandler``
/// behind NIO's HTTP/2-to-HTTP/1 codec, so every guard applies per stream as it does per request.
enum TLSSetup {
    /// The server context of a TLS listener: its default certificate, the sites' certificates
    /// chosen by SNI, TLS 1.2 and 1.3 with BoringSSL's modern defaults.
    static func context(_ tls: ListenerTLS, sites: [SiteConfig], defaultSite: String?) throws -> NIOSSLContext {
        let (chain, key) = try load(tls.files)
        var config = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: key)
        config.minimumTLSVersion = .tlsv12
        config.applicationProtocols = tls.http2 ? ["h2", "http/1.1"] : ["http/1.1"]
        var certificates: [Int: ([NIOSSLCertificateSource], NIOSSLPrivateKeySource)] = [:]
        for (i, site) in sites.enumerated() {
            if let files = site.tls { certificates[i] = try load(files) }
        }
        if !certificates.isEmpty {
            let router = SiteRouter(sites: sites, defaultSite: nil)
            let table = certificates
            config.sslContextCallback = { values, promise in
                var override = NIOSSLContextConfigurationOverride()
                if let name = values.serverHostname, let site = router.route(host: name), let (chain, key) = table[site] {
                    override.certificateChain = chain
                    override.privateKey = key
                }
                promise.succeed(override)
            }
        }
        return try NIOSSLContext(configuration: config)
    }

    static func load(_ files: CertificateFiles) throws -> ([NIOSSLCertificateSource], NIOSSLPrivateKeySource) {
        let chain = try NIOSSLCertificate.fromPEMFile(files.certificate).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: files.key, format: .pem)
        return (chain, .privateKey(key))
    }

    /// Per-connection HTTP/2 limits: at most 100 concurrent streams, 16 KiB of headers, and NIO's
    /// budgets for the 2023-2024 attacks (rapid reset, CONTINUATION and control-frame floods,
    /// "glitches"); a connection over any budget gets GOAWAY and is closed.
    static var connectionConfiguration: NIOHTTP2Handler.ConnectionConfiguration {
        var c = NIOHTTP2Handler.ConnectionConfiguration()
        c.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: 100),
            HTTP2Setting(parameter: .maxHeaderListSize, value: 16 * 1024),
            HTTP2Setting(parameter: .initialWindowSize, value: 65_535),
        ]
        c.maximumSequentialContinuationFrames = 5
        c.maximumSequentialEmptyDataFrames = 1
        c.maximumBufferedControlFrames = 1000
        c.controlFrameRateLimit.maximumCount = 100
        c.controlFrameRateLimit.windowLength = .seconds(10)
        return c
    }

    static var streamConfiguration: NIOHTTP2Handler.StreamConfiguration {
        var s = NIOHTTP2Handler.StreamConfiguration()
        // Rapid reset: more than 100 client resets in 10 s ends the connection.
        s.streamResetFrameRateLimit.maximumCount = 100
        s.streamResetFrameRateLimit.windowLength = .seconds(10)
        s.streamErrorRateLimit.maximumCount = 100
        s.streamErrorRateLimit.windowLength = .seconds(10)
        return s
    }
}

extension Gateway {
    /// The pipeline of a TLS connection: TLS, then ALPN chooses HTTP/2 (a stream multiplexer whose
    /// streams each get a client handler) or HTTP/1.1 (the plain pipeline, scheme https).
    static func configureTLSPipeline(
        channel: any Channel,
        context bound: NIOLoopBound<LoopContext>,
        listener: Int,
        tls: NIOSSLContext,
        gate: NIOLoopBound<AcceptGate>
    ) throws {
        let sync = channel.pipeline.syncOperations
        let peer = IPAddress(channel.remoteAddress) ?? IPAddress(v4: 0)
        // Handshake floods: a source over its handshake rate, or a loop with too many handshakes
        // in progress, is closed before any cryptography is done.
        let ctx = bound.value
        if let settings = ctx.config.source.listeners[listener].tls, !ctx.admitHandshake(peer, listener: listener, tls: settings) {
            ctx.reject(.tlsHandshakeLimited, client: peer)
            _ = ctx.strike(peer, reason: .tlsHandshakeLimited)
            throw HandshakeRefused()
        }
        try sync.addHandler(NIOSSLServerHandler(context: tls))
        try sync.addHandler(HandshakeTracker(loop: ctx))
        _ = channel.configureHTTP2SecureUpgrade(
            h2ChannelConfigurator: { channel in
                channel.eventLoop.makeCompletedFuture {
                    bound.value.counters.http2Connections += 1
                    _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .server,
                        connectionConfiguration: TLSSetup.connectionConfiguration,
                        streamConfiguration: TLSSetup.streamConfiguration
                    ) { stream in
                        stream.eventLoop.makeCompletedFuture {
                            let client = ClientHandler(loop: bound.value, listener: listener, peer: peer, scheme: "https", now: stream.eventLoop.now)
                            try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                            try stream.pipeline.syncOperations.addHandler(client)
                        }
                    }
                    try channel.pipeline.syncOperations.addHandler(HTTP2FloodWatcher(loop: bound.value, peer: peer))
                }
            },
            http1ChannelConfigurator: { channel in
                channel.eventLoop.makeCompletedFuture {
                    try configureHTTP1(channel: channel, context: bound.value, listener: listener, peer: peer, scheme: "https")
                }
            }
        )
    }
}

struct HandshakeRefused: Error {}

/// Counts the handshakes in progress on a loop: from connection setup until the handshake
/// completes or the connection closes.
final class HandshakeTracker: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let loop: LoopContext
    private var counted = true

    init(loop: LoopContext) {
        self.loop = loop
        loop.handshakesInFlight += 1
    }

    private func done() {
        guard counted else { return }
        counted = false
        loop.handshakesInFlight -= 1
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { done() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        done()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { done() }
}

@available(*, unavailable)
extension HandshakeTracker: Sendable {}

/// Sits after the HTTP/2 handler: a connection that broke a flood budget (NIO sends GOAWAY and
/// closes it) is counted, logged, and struck toward a ban of its source.
final class HTTP2FloodWatcher: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload

    private let loop: LoopContext
    private let peer: IPAddress

    init(loop: LoopContext, peer: IPAddress) {
        self.loop = loop
        self.peer = peer
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let budget: String?
        switch error {
        case is NIOHTTP2Errors.ExcessiveRSTFrames, is NIOHTTP2Errors.ExcessiveStreamErrors: budget = "rapid reset"
        case is NIOHTTP2Errors.ExcessiveContinuationFrames, is NIOHTTP2Errors.ExcessivelyLargeHeaderBlock: budget = "CONTINUATION flood"
        case is NIOHTTP2Errors.ExcessiveControlFrames: budget = "control frame flood"
        case is NIOHTTP2Errors.ExcessiveEmptyDataFrames: budget = "empty DATA flood"
        case is NIOHTTP2Errors.ExcessiveNumberOfGlitches: budget = "protocol glitches"
        case is NIOHTTP2Errors.ExcessiveOutboundFrameBuffering: budget = "unread responses"
        default: budget = nil
        }
        if let budget {
            loop.reject(.http2Flood, client: peer, detail: budget)
            // Several strikes at once: a connection that floods frames is worth many refused requests.
            for _ in 0..<20 {
                if loop.strike(peer, reason: .http2Flood) { break }
            }
        }
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension HTTP2FloodWatcher: Sendable {}
