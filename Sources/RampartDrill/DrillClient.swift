import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import RampartCore

/// What one request of the drill got back.
public struct DrillResponse: Sendable {
    /// HTTP status, or 0 when the request failed before a status (refused, reset, timed out).
    public var status: Int
    /// Response headers (empty on failure).
    public var headers: HTTPHeaders
    /// Response body size in bytes.
    public var bodyBytes: Int
    /// Body text when it was small (challenge pages are parsed from it), else empty.
    public var smallBody: String
    /// Seconds from send to the end of the response.
    public var seconds: Double
}

/// An HTTP/1.1 keep-alive connection from a chosen loopback source address, one request at a
/// time. The drill's simulated users and attackers are made of these.
final class DrillConnection: Sendable {
    let channel: any Channel

    private init(channel: any Channel) { self.channel = channel }

    /// Opens a connection from `source` to `target`. Both must be loopback.
    static func connect(
        group: any EventLoopGroup,
        source: IPAddress,
        target: SocketAddress,
        timeout: TimeAmount,
        tls: DrillTLS? = nil
    ) async throws -> DrillConnection {
        let channel = try await openChannel(group: group, source: source, target: target, timeout: timeout, tls: tls, alpn: \.http1) { pipeline in
            try pipeline.addHTTPClientHandlers()
            try pipeline.addHandler(DrillResponseHandler())
        }
        return DrillConnection(channel: channel)
    }

    /// A TCP connection from `source` (loopback) to `target`, through TLS when `tls` is given
    /// (with the ALPN offer `alpn` picks), then the `handlers` the caller adds. Every client of
    /// the drill (users, API clients, slow and HTTP/2 attackers) connects through here.
    static func openChannel(
        group: any EventLoopGroup,
        source: IPAddress,
        target: SocketAddress,
        timeout: TimeAmount,
        tls: DrillTLS?,
        alpn: KeyPath<DrillTLS, NIOSSLContext>,
        handlers: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void = { _ in }
    ) async throws -> any Channel {
        let local = try SocketAddress(ipAddress: source.description, port: 0)
        let context = tls.map { $0[keyPath: alpn] }
        let serverName = tls?.serverName
        return try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(timeout)
            .bind(to: local)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
                    }
                    try handlers(channel.pipeline.syncOperations)
                }
            }
            .connect(to: target).get()
    }

    /// Sends one request and waits for its whole response (at most `timeout`).
    func send(_ head: HTTPRequestHead, body: String? = nil, timeout: TimeAmount) async -> DrillResponse {
        let started = NIODeadline.now()
        let promise = channel.eventLoop.makePromise(of: DrillResponse.self)
        let channel = self.channel
        channel.eventLoop.execute {
            guard let handler = try? channel.pipeline.syncOperations.handler(type: DrillResponseHandler.self) else {
                promise.succeed(DrillResponse(status: 0, headers: [:], bodyBytes: 0, smallBody: "", seconds: 0))
                return
            }
            handler.start(promise: promise, started: started)
            var head = head
            if let body { head.headers.replaceOrAdd(name: "Content-Length", value: String(body.utf8.count)) }
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: body))), promise: nil) }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        }
        let timer = channel.eventLoop.scheduleTask(in: timeout) {
            promise.succeed(DrillResponse(status: 0, headers: [:], bodyBytes: 0, smallBody: "", seconds: Double((NIODeadline.now() - started).nanoseconds) / 1e9))
            channel.close(promise: nil)
        }
        let response = (try? await promise.futureResult.get()) ?? DrillResponse(status: 0, headers: [:], bodyBytes: 0, smallBody: "", seconds: 0)
        timer.cancel()
        return response
    }

    var isActive: Bool { channel.isActive }

    func close() {
        channel.close(promise: nil)
    }
}

/// Collects one response at a time for ``DrillConnection``.
final class DrillResponseHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    private var promise: EventLoopPromise<DrillResponse>?
    private var started = NIODeadline.now()
    private var status = 0
    private var headers = HTTPHeaders()
    private var bytes = 0
    private var body = ""
    static let smallBodyLimit = 16 * 1024

    func start(promise: EventLoopPromise<DrillResponse>, started: NIODeadline) {
        self.promise = promise
        self.started = started
        status = 0
        headers = [:]
        bytes = 0
        body = ""
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
            headers = head.headers
        case .body(let buffer):
            bytes += buffer.readableBytes
            if bytes <= Self.smallBodyLimit { body += String(buffer: buffer) }
        case .end:
            let seconds = Double((NIODeadline.now() - started).nanoseconds) / 1e9
            promise?.succeed(DrillResponse(status: status, headers: headers, bodyBytes: bytes, smallBody: body, seconds: seconds))
            promise = nil
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(context: context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context: context)
        context.close(promise: nil)
    }

    private func fail(context: ChannelHandlerContext) {
        let seconds = Double((NIODeadline.now() - started).nanoseconds) / 1e9
        promise?.succeed(DrillResponse(status: 0, headers: [:], bodyBytes: 0, smallBody: "", seconds: seconds))
        promise = nil
    }
}

@available(*, unavailable)
extension DrillResponseHandler: Sendable {}

extension DrillResponse {
    /// Where a same-site redirect (301, 302, 303, 307 to a path) sends a browser; nil otherwise.
    var redirectPath: String? {
        guard status == 301 || status == 302 || status == 303 || status == 307,
            let location = headers.first(name: "location"), location.hasPrefix("/")
        else { return nil }
        return location
    }
}

/// TLS client settings of a drill run against a TLS target: loopback test certificates are not
/// verified. `http1` offers ALPN http/1.1 (users, API clients), `h2` offers h2 (S6's attackers).
public struct DrillTLS: Sendable {
    let http1: NIOSSLContext
    let h2: NIOSSLContext
    /// The name sent in SNI (the plan's host).
    let serverName: String?

    init(serverName: String) throws {
        func context(_ alpn: [String]) throws -> NIOSSLContext {
            var c = TLSConfiguration.makeClientConfiguration()
            c.certificateVerification = .none
            c.applicationProtocols = alpn
            return try NIOSSLContext(configuration: c)
        }
        http1 = try context(["http/1.1"])
        h2 = try context(["h2"])
        self.serverName = IPAddress(serverName) == nil ? serverName : nil
    }
}
