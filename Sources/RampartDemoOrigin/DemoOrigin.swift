import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import RampartCore

/// A small origin with a fixed capacity: at most `concurrency` requests are served at once, each
/// taking `serviceTime`; the rest wait in line. It is the demo's backend, the tests' origin and the
/// drill's target, and it counts what reaches it (per forwarded client address range).
///
/// Routes: `/` (HTML page), `/static/*` (cacheable assets), `/api/*` (JSON), `POST /login`,
/// `/echo` (request as JSON), `/stream?chunks=N` (chunked body), `POST /upload` (counts body
/// bytes), `/slow?ms=N`, `/healthz`, `/ws` (WebSocket echo), `/__origin/stats` (counters, never
/// delayed).
public final class DemoOrigin: Sendable {
    /// Capacity and behaviour.
    public struct Configuration: Sendable {
        /// Requests served at once; more wait in line.
        public var concurrency: Int = 64
        /// Time each request takes to serve (before its response starts).
        public var serviceTime: TimeAmount = .zero
        /// Event loop threads.
        public var threads: Int = 1
        /// Blocks of forwarded client addresses counted separately (e.g. legit vs attack ranges).
        public var countedRanges: [CIDR] = []
        /// Check credentials like a real site: `POST /login` succeeds (303 to `/account` with a
        /// `sessionid` cookie) only with `password=` ``DemoOrigin/memberPassword`` in its body and
        /// answers 401 otherwise; `/api/*` with a key other than the drill's (`drill-api-key-…`)
        /// answers 401. Off: every login succeeds and every key is taken.
        public var checkCredentials = false
        /// Requests that may wait for a free worker; more are answered 503 at once (a small
        /// application server's short accept queue). Nil: the line is unbounded.
        public var queueLimit: Int? = nil

        /// The defaults: 64 at once, no added service time, one thread.
        public init() {}
    }

    /// What the origin has seen.
    public struct Stats: Sendable, Equatable {
        /// Requests received (stats requests excluded).
        public var requests = 0
        /// Requests currently being served or waiting.
        public var inFlight = 0
        /// Most requests being served at the same moment.
        public var peakConcurrent = 0
        /// Requests per counted range, by the `X-Forwarded-For` address (same order as configured).
        public var perRange: [Int] = []
        /// Requests answered 503 because the waiting line was full (``Configuration/queueLimit``),
        /// per counted range (same order), then those that matched none.
        public var overflowed: [Int] = []
        /// Requests whose forwarded address matched no counted range.
        public var unmatched = 0
        /// Request heads received, counted as soon as they arrive (before the body).
        public var headsReceived = 0
    }

    private let group: MultiThreadedEventLoopGroup
    private let configuration: Configuration
    private let shared: NIOLockedValueBox<SharedState>
    private let channel: NIOLockedValueBox<(any Channel)?>

    struct SharedState {
        var stats = Stats()
        var serving = 0
        var waiting: [(any EventLoop, @Sendable () -> Void)] = []
    }

    /// Creates the origin; ``start(host:port:)`` binds it.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.threads)
        var state = SharedState()
        state.stats.perRange = Array(repeating: 0, count: configuration.countedRanges.count)
        state.stats.overflowed = Array(repeating: 0, count: configuration.countedRanges.count + 1)
        self.shared = NIOLockedValueBox(state)
        self.channel = NIOLockedValueBox(nil)
    }

    /// Binds and serves; returns the bound port.
    @discardableResult
    public func start(host: String = "127.0.0.1", port: Int = 0) async throws -> Int {
        let origin = self
        let ch = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let websocket = NIOWebSocketServerUpgrader(
                        shouldUpgrade: { channel, head in
                            channel.eventLoop.makeSucceededFuture(head.uri == "/ws" ? HTTPHeaders() : nil)
                        },
                        upgradePipelineHandler: { channel, _ in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandler(WebSocketEchoHandler())
                            }
                        }
                    )
                    let handler = OriginHandler(origin: origin)
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withServerUpgrade: (
                            upgraders: [websocket],
                            completionHandler: { context in
                                // After the upgrade the HTTP handler must not see WebSocket bytes.
                                context.pipeline.syncOperations.removeHandler(name: "origin-http", promise: nil)
                            }
                        )
                    )
                    try channel.pipeline.syncOperations.addHandler(handler, name: "origin-http")
                }
            }
            .bind(host: host, port: port).get()
        channel.withLockedValue { $0 = ch }
        return ch.localAddress?.port ?? port
    }

    /// Stops serving and releases the threads.
    public func stop() async {
        let ch = channel.withLockedValue { $0 }
        try? await ch?.close()
        try? await group.shutdownGracefully()
    }

    /// A copy of the counters.
    public var stats: Stats { shared.withLockedValue { $0.stats } }

    /// Resets the counters (not the in-flight count).
    public func resetStats() {
        shared.withLockedValue {
            let inFlight = $0.stats.inFlight
            $0.stats = Stats()
            $0.stats.inFlight = inFlight
            $0.stats.perRange = Array(repeating: 0, count: configuration.countedRanges.count)
            $0.stats.overflowed = Array(repeating: 0, count: configuration.countedRanges.count + 1)
        }
    }

    /// The password `POST /login` accepts when credentials are checked.
    public static let memberPassword = "correct-horse-battery"

    /// Records a request and runs `serve` once a capacity slot is free; false (and nothing runs)
    /// when the waiting line is full.
    @discardableResult
    func admit(forwardedFor: String?, on loop: any EventLoop, serve: @escaping @Sendable () -> Void) -> Bool {
        let ranges = configuration.countedRanges
        let client = forwardedFor.flatMap { value in
            value.split(separator: ",").last.flatMap { IPAddress($0.trimmingASCIISpaces()) }
        }
        let range = client.flatMap { c in ranges.firstIndex(where: { $0.contains(c) }) }
        let runNow = shared.withLockedValue { s -> Bool? in
            s.stats.requests += 1
            if let range {
                s.stats.perRange[range] += 1
            } else {
                s.stats.unmatched += 1
            }
            if s.serving < configuration.concurrency {
                s.stats.inFlight += 1
                s.serving += 1
                s.stats.peakConcurrent = max(s.stats.peakConcurrent, s.serving)
                return true
            }
            if let limit = configuration.queueLimit, s.waiting.count >= limit {
                s.stats.overflowed[range ?? ranges.count] += 1
                return nil
            }
            s.stats.inFlight += 1
            s.waiting.append((loop, serve))
            return false
        }
        guard let runNow else { return false }
        if runNow { serve() }
        return true
    }

    /// Counts a request head as it arrives.
    func headArrived() {
        shared.withLockedValue { $0.stats.headsReceived += 1 }
    }

    /// Frees a capacity slot, starting the next waiting request.
    func finished() {
        let next = shared.withLockedValue { s -> (any EventLoop, @Sendable () -> Void)? in
            s.stats.inFlight -= 1
            if !s.waiting.isEmpty {
                s.stats.peakConcurrent = max(s.stats.peakConcurrent, s.serving)
                return s.waiting.removeFirst()
            }
            s.serving -= 1
            return nil
        }
        if let (loop, serve) = next { loop.execute(serve) }
    }

    var serviceTime: TimeAmount { configuration.serviceTime }
    var checkCredentials: Bool { configuration.checkCredentials }
}

/// Serves one connection of the demo origin.
final class OriginHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let origin: DemoOrigin
    private var head: HTTPRequestHead?
    private var bodyBytes = 0
    /// The body's first bytes (a login form), kept only when credentials are checked.
    private var bodyPrefix: [UInt8] = []

    init(origin: DemoOrigin) { self.origin = origin }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            bodyBytes = 0
            bodyPrefix.removeAll(keepingCapacity: true)
            origin.headArrived()
        case .body(let b):
            bodyBytes += b.readableBytes
            if origin.checkCredentials, bodyPrefix.count < 512 { bodyPrefix += b.readableBytesView.prefix(512 - bodyPrefix.count) }
        case .end:
            guard let head else { return }
            self.head = nil
            route(head, bodyBytes: bodyBytes, context: context)
        }
    }

    private func route(_ head: HTTPRequestHead, bodyBytes: Int, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "/"
        if path == "/__origin/stats" {
            let s = origin.stats
            let json = #"{"requests":\#(s.requests),"in_flight":\#(s.inFlight),"peak_concurrent":\#(s.peakConcurrent),"per_range":\#(s.perRange),"unmatched":\#(s.unmatched)}"#
            respond(context: context, head: head, status: .ok, type: "application/json", body: json)
            return
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let delay = origin.serviceTime
        let origin = self.origin
        let body = String(decoding: bodyPrefix, as: UTF8.self)
        let admitted = origin.admit(forwardedFor: head.headers.first(name: "x-forwarded-for"), on: context.eventLoop) {
            let loop = loopBound.eventLoop
            let work = {
                let (handler, context) = loopBound.value
                handler.serve(head, bodyBytes: bodyBytes, body: body, path: path, context: context)
                origin.finished()
            }
            if delay > .zero {
                loop.scheduleTask(in: delay) { work() }
            } else {
                loop.execute { work() }
            }
        }
        if !admitted {
            // The line is full: a small application server refuses at once.
            respond(context: context, head: head, status: .serviceUnavailable, type: "text/plain", body: "overloaded\n", extraHeaders: [("Retry-After", "1")])
        }
    }

    /// The answer of a site that checks credentials, for the routes that need them; nil for others.
    static func credentialAnswer(_ head: HTTPRequestHead, body: String, path: String) -> (status: HTTPResponseStatus, body: String, headers: [(String, String)])? {
        if head.method == .POST, path == "/login" {
            guard body.contains("password=\(DemoOrigin.memberPassword)") else { return (.unauthorized, #"{"login":"failed"}"#, []) }
            let session = String(UInt64.random(in: 1...UInt64.max), radix: 16)
            return (.seeOther, #"{"login":"ok"}"#, [("Location", "/account"), ("Set-Cookie", "sessionid=\(session); Path=/; HttpOnly")])
        }
        if path.hasPrefix("/api/") {
            var key = head.headers.first(name: "x-api-key")
            if key == nil, let auth = head.headers.first(name: "authorization"), auth.lowercased().hasPrefix("bearer ") { key = String(auth.dropFirst(7)) }
            if let key, !key.hasPrefix("drill-api-key-") { return (.unauthorized, #"{"error":"unknown key"}"#, []) }
        }
        return nil
    }

    private func serve(_ head: HTTPRequestHead, bodyBytes: Int, body: String, path: String, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        let query = Self.query(head.uri)
        if origin.checkCredentials, let answer = Self.credentialAnswer(head, body: body, path: path) {
            respond(context: context, head: head, status: answer.status, type: "application/json", body: answer.body, extraHeaders: answer.headers)
            return
        }
        switch (head.method, path) {
        case (.GET, "/"), (.HEAD, "/"):
            respond(context: context, head: head, status: .ok, type: "text/html; charset=utf-8", body: Self.homePage, cache: "public, max-age=1")
        case (.GET, "/healthz"):
            respond(context: context, head: head, status: .ok, type: "text/plain", body: "ok\n")
        case (.GET, "/echo"), (.POST, "/echo"):
            var fields: [String] = []
            for (name, value) in head.headers { fields.append(#""\#(Self.json(name.lowercased()))":"\#(Self.json(value))""#) }
            let body = #"{"method":"\#(head.method.rawValue)","uri":"\#(Self.json(head.uri))","body_bytes":\#(bodyBytes),"headers":{\#(fields.joined(separator: ","))}}"#
            respond(context: context, head: head, status: .ok, type: "application/json", body: body)
        case (.POST, "/login"):
            // A session cookie, as a real site's login sets one (the gateway can learn its name).
            let session = String(UInt64.random(in: 1...UInt64.max), radix: 16)
            respond(context: context, head: head, status: .ok, type: "application/json", body: #"{"login":"ok"}"#,
                    extraHeaders: [("Set-Cookie", "sessionid=\(session); Path=/; HttpOnly")])
        case (.POST, "/upload"), (.PUT, "/upload"):
            respond(context: context, head: head, status: .ok, type: "application/json", body: #"{"received":\#(bodyBytes)}"#)
        case (.GET, "/stream"):
            let chunks = min(Int(query["chunks"] ?? "") ?? 10, 10_000)
            let size = min(Int(query["size"] ?? "") ?? 1024, 1 << 20)
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: query["type"] == "html" ? "text/html" : "application/octet-stream")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
            let chunk = context.channel.allocator.buffer(repeating: UInt8(ascii: "x"), count: size)
            for _ in 0..<chunks { context.write(wrapOutboundOut(.body(.byteBuffer(chunk))), promise: nil) }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        case (.GET, "/slow"):
            let ms = min(Int64(query["ms"] ?? "") ?? 1000, 60_000)
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .milliseconds(ms)) {
                let (handler, context) = bound.value
                handler.respond(context: context, head: head, status: .ok, type: query["type"] == "html" ? "text/html" : "text/plain", body: "slow \(ms)ms\n")
            }
        case (.GET, _) where path.hasPrefix("/static/"):
            let type = path.hasSuffix(".css") ? "text/css" : path.hasSuffix(".js") ? "application/javascript" : "application/octet-stream"
            respond(context: context, head: head, status: .ok, type: type, body: "/* \(path) */\n", cache: "public, max-age=3600")
        case (.GET, _) where path.hasPrefix("/api/"):
            respond(context: context, head: head, status: .ok, type: "application/json", body: #"{"path":"\#(Self.json(path))","ok":true}"#)
        case (.GET, _), (.HEAD, _):
            respond(context: context, head: head, status: .ok, type: "text/html; charset=utf-8", body: "<!doctype html><title>\(Self.html(path))</title><p>Page \(Self.html(path))</p>\n")
        default:
            respond(context: context, head: head, status: .methodNotAllowed, type: "text/plain", body: "method not allowed\n")
        }
    }

    func respond(
        context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus, type: String, body: String, cache: String? = nil,
        extraHeaders: [(String, String)] = []
    ) {
        guard context.channel.isActive else { return }
        var buffer = context.channel.allocator.buffer(capacity: body.utf8.count)
        buffer.writeString(body)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: type)
        headers.add(name: "Content-Length", value: String(buffer.readableBytes))
        if let cache { headers.add(name: "Cache-Control", value: cache) }
        for (name, value) in extraHeaders { headers.add(name: name, value: value) }
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD { context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil) }
        let keepAlive = head.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }

    static func query(_ uri: String) -> [String: String] {
        guard let q = uri.split(separator: "?", maxSplits: 1).dropFirst().first else { return [:] }
        var out: [String: String] = [:]
        for pair in q.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            out[String(kv[0])] = kv.count > 1 ? String(kv[1]) : ""
        }
        return out
    }

    static func json(_ s: String) -> String {
        s.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"")
    }

    static func html(_ s: String) -> String {
        s.replacingAll("&", with: "&amp;").replacingAll("<", with: "&lt;").replacingAll(">", with: "&gt;")
    }

    static let homePage = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
        <title>Demo origin behind Rampart</title><link rel="stylesheet" href="/static/site.css"></head>
        <body><h1>It works</h1><p>This page comes from Rampart's built-in demo origin, through the gateway.</p>
        <p>Try <a href="/echo">/echo</a> to see the headers the origin receives.</p><script src="/static/app.js"></script></body></html>

        """
}

/// Echoes WebSocket text and binary frames, answers pings, and closes on a close frame.
final class WebSocketEchoHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        var payload = frame.unmaskedData
        switch frame.opcode {
        case .text, .binary:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: frame.opcode, data: payload)), promise: nil)
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: payload)), promise: nil)
        case .connectionClose:
            let code = payload.readSlice(length: min(2, payload.readableBytes)) ?? ByteBuffer()
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: code))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        default:
            break
        }
    }
}

@available(*, unavailable)
extension WebSocketEchoHandler: Sendable {}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard contains(target) else { return self }
        return split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

@available(*, unavailable)
extension OriginHandler: Sendable {}
