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
        let chain: [NIOSSLCertificateSource]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(files.certificate).map { NIOSSLCertificateSource.certificate($0) }
        } catch {
            throw FileError(path: files.certificate, what: "certificate", cause: error)
        }
        do {
            return (chain, .privateKey(try NIOSSLPrivateKey(file: files.key, format: .pem)))
        } catch {
            throw FileError(path: files.key, what: "private key", cause: error)
        }
    }

    /// A certificate or key file that could not be read, named (a SIGHUP after a renewal gone
    /// wrong must say which file, not only NIOSSL's error).
    struct FileError: Error, CustomStringConvertible {
        let path: String
        let what: String
        let cause: any Error
        var description: String { "\(path): cannot load the \(what): \(cause)" }
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
    /// The pipeline of a TLS connection. First the PROXY header (on listeners that expect one), then
    /// the ClientHello is read in the clear: its JA4 fingerprint is taken and the handshake budget
    /// of the real source is checked before any cryptography. Then TLS, and ALPN chooses HTTP/2 (a
    /// stream multiplexer whose streams each get a client handler) or HTTP/1.1 (scheme https).
    static func configureTLSPipeline(
        channel: any Channel,
        context bound: NIOLoopBound<LoopContext>,
        listener: Int,
        tls: NIOSSLContext,
        proxyProtocol: Bool,
        gate: NIOLoopBound<AcceptGate>
    ) throws {
        let sync = channel.pipeline.syncOperations
        let ctx = bound.value
        let limits = ctx.config.source.listeners[listener].limits
        let reader = ClientHelloReader(loop: ctx, listener: listener, peer: IPAddress(channel.remoteAddress) ?? IPAddress(v4: 0)) {
            channel, reader, peer, fingerprint in
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls), position: .after(reader))
            configureALPN(channel: channel, context: bound, listener: listener, peer: peer, fingerprint: fingerprint)
        }
        if proxyProtocol {
            try sync.addHandler(ProxyProtocolHandler(loop: ctx, gate: gate) { reader.peer = $0 })
        }
        try sync.addHandler(reader)
        // Counts the handshake in progress and closes a connection that has not completed one
        // within the header timeout (no hello, or a hello and then silence).
        try sync.addHandler(HandshakeTracker(loop: ctx, deadline: channel.eventLoop.now + limits.headerTimeout))
    }

    static func configureALPN(
        channel: any Channel, context bound: NIOLoopBound<LoopContext>, listener: Int, peer: IPAddress, fingerprint: String
    ) {
        _ = channel.configureHTTP2SecureUpgrade(
            h2ChannelConfigurator: { channel in
                channel.eventLoop.makeCompletedFuture {
                    bound.value.counters.http2Connections += 1
                    try channel.pipeline.syncOperations.addHandler(FlushCoalescer())
                    _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .server,
                        connectionConfiguration: TLSSetup.connectionConfiguration,
                        streamConfiguration: TLSSetup.streamConfiguration
                    ) { stream in
                        stream.eventLoop.makeCompletedFuture {
                            let client = ClientHandler(
                                loop: bound.value, listener: listener, peer: peer, scheme: "https", fingerprint: fingerprint, now: stream.eventLoop.now
                            )
                            try stream.pipeline.syncOperations.addHandler(HTTP2RequestGuard(loop: bound.value, peer: peer))
                            try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                            try stream.pipeline.syncOperations.addHandler(client)
                        }
                    }
                    try channel.pipeline.syncOperations.addHandler(HTTP2FloodWatcher(loop: bound.value, peer: peer))
                }
            },
            http1ChannelConfigurator: { channel in
                channel.eventLoop.makeCompletedFuture {
                    try configureHTTP1(
                        channel: channel, context: bound.value, listener: listener, peer: peer, scheme: "https", fingerprint: fingerprint
                    )
                }
            }
        )
    }
}

/// Between TLS and the HTTP/2 handler: the streams of one connection each flush when their
/// response is written (answers from different origin connections, in the same loop turn); their
/// flushes are merged into one at the end of the turn, so the connection writes one run of TLS
/// records with one syscall instead of one per stream. A close flushes first.
final class FlushCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = Any
    private var pending = false

    func flush(context: ChannelHandlerContext) {
        guard !pending else { return }
        pending = true
        context.eventLoop.assumeIsolated().execute {
            guard self.pending else { return }
            self.pending = false
            context.flush()
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if pending {
            pending = false
            context.flush()
        }
        context.close(mode: mode, promise: promise)
    }
}

@available(*, unavailable)
extension FlushCoalescer: Sendable {}

/// Reads a TLS connection's ClientHello before TLS starts: takes its JA4 fingerprint, refuses
/// what is not a hello, applies the per-source handshake budget, then installs TLS behind itself,
/// replays the bytes it held and leaves the pipeline.
final class ClientHelloReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// The client address: the TCP peer, or what the PROXY header said.
    var peer: IPAddress
    private let loop: LoopContext
    private let listener: Int
    private var buffered: ByteBuffer?
    private var finished = false
    private let install: (any Channel, ClientHelloReader, IPAddress, String) throws -> Void

    init(
        loop: LoopContext, listener: Int, peer: IPAddress,
        install: @escaping (any Channel, ClientHelloReader, IPAddress, String) throws -> Void
    ) {
        self.loop = loop
        self.listener = listener
        self.peer = peer
        self.install = install
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !finished else {
            context.fireChannelRead(data)
            return
        }
        var incoming = unwrapInboundIn(data)
        if buffered == nil { buffered = incoming } else { buffered!.writeBuffer(&incoming) }
        let verdict = ClientHello.parse(buffered!.readableBytesView)
        switch verdict {
        case .needMoreData:
            return
        case .notTLS:
            refuse(context, .tlsMalformed, detail: "not a TLS handshake")
        case .malformed(let why):
            refuse(context, .tlsMalformed, detail: why)
        case .hello(let hello):
            finished = true
            let fingerprint = JA4.fingerprint(hello)
            // Handshake floods: a source over its handshake rate, or a loop with too many
            // handshakes in progress, is closed before any cryptography is done.
            if let settings = loop.config.source.listeners[listener].tls, !loop.admitHandshake(peer, listener: listener, tls: settings) {
                _ = loop.strike(peer, reason: .tlsHandshakeLimited)
                refuse(context, .tlsHandshakeLimited, detail: nil)
                return
            }
            do {
                try install(context.channel, self, peer, fingerprint)
            } catch {
                refuse(context, .tlsMalformed, detail: "cannot set up TLS: \(error)")
                return
            }
            let held = buffered!
            buffered = nil
            context.fireChannelRead(wrapInboundOut(held))
            context.fireChannelReadComplete()
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        }
    }

    private func refuse(_ context: ChannelHandlerContext, _ reason: RejectReason, detail: String?) {
        finished = true
        buffered = nil
        loop.reject(reason, client: peer, detail: detail)
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension ClientHelloReader: Sendable {}

/// Counts the handshakes in progress on a loop, from connection setup until the handshake
/// completes or the connection closes, and closes a connection whose handshake has not completed
/// by `deadline`.
final class HandshakeTracker: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let loop: LoopContext
    private let deadline: NIODeadline
    private var counted = true
    private var timer: Scheduled<Void>?

    init(loop: LoopContext, deadline: NIODeadline) {
        self.loop = loop
        self.deadline = deadline
        loop.handshakesInFlight += 1
    }

    func handlerAdded(context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [loop] in
            guard self.counted else { return }
            loop.reject(.tlsMalformed, client: IPAddress(context.channel.remoteAddress), detail: "no TLS handshake within the header timeout")
            context.close(promise: nil)
        }
    }

    private func done() {
        timer?.cancel()
        timer = nil
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
