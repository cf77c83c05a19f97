import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import RampartCore

/// Keep-alive connections from one event loop to one origin, with a cap, a bounded FIFO of waiting
/// requests, and the origin's health as this loop sees it. Confined to its loop: no locks.
///
/// Below the connection cap, a learned concurrency limit (``AdaptiveConcurrency``, when the origin
/// has `adaptive_concurrency`) decides how many requests are at the origin at once: past it,
/// requests wait here, in the two-class queue, even when an idle connection is there.
final class OriginPool {
    let eventLoop: any EventLoop
    let address: HostPort
    private let resolved: SocketAddress?
    /// Opens the connections (sockets in the gateway; embedded channels in tests).
    private let connector: any OriginConnector
    /// Most connections this loop opens to the origin (its share of the origin's cap).
    var maxConnections: Int
    var connectTimeout: TimeAmount
    var health: OriginHealth
    /// TLS to the origin (nil: plain HTTP), and the name sent and verified.
    var tls: NIOSSLContext?
    private let serverName: String?

    private var idle: [UpstreamConnection] = []
    private(set) var open = 0
    /// Requests using (or waiting for) a connection of this pool right now.
    private(set) var inFlight = 0
    /// The learned limit of requests at the origin at once (nil: the connection cap only).
    private(set) var adaptive: AdaptiveConcurrency?
    /// Requests waiting for a connection: known-good clients first (with one turn in eight kept
    /// for everyone else while both wait).
    private var queue = TwoClassQueue<Waiter>(regularShare: 8)
    /// Requests of people the site knows by name (members, configured API keys, allow-listed
    /// addresses): served before both classes above. A clearance is one person's too, but a
    /// botnet that keeps cookies holds thousands of them; a member session or a key it does not.
    private var first = CircularBuffer<Waiter>()
    /// Most requests that may wait for a connection on this loop.
    static let maxWaiters = 1024
    /// Longest a request waits for a connection.
    static let maxWait: TimeAmount = .seconds(10)

    /// Called with the connection, or the error that prevented one; never synchronously from `acquire`.
    typealias Callback = (Result<UpstreamConnection, any Error>) -> Void

    struct Waiter {
        let enqueued: NIODeadline
        let callback: Callback
        /// Queued before the site started challenging: decided again if it does.
        var recheck = false
    }

    /// The result of asking for a connection.
    enum Acquisition {
        /// An idle pooled connection, ready now.
        case ready(UpstreamConnection)
        /// A connection is being opened, or the request waits in the queue; the callback will say.
        case pending
        /// No connection can be had.
        case unavailable(RejectReason)
    }

    init(
        eventLoop: any EventLoop, origin: OriginConfig, share: Int, loops: Int = 1, site: SiteConfig, tls: NIOSSLContext? = nil,
        connector: any OriginConnector = SocketOriginConnector()
    ) {
        self.connector = connector
        self.tls = tls
        self.serverName = origin.tlsServerName
        self.eventLoop = eventLoop
        self.address = origin.address
        self.resolved = IPAddress(origin.address.host).flatMap { _ in
            try? SocketAddress(ipAddress: origin.address.host, port: origin.address.port)
        }
        self.maxConnections = share
        self.connectTimeout = site.limits.originConnectTimeout
        self.health = OriginHealth(active: site.healthCheck, passive: site.passive)
        configureAdaptive(origin, share: share, loops: loops)
    }

    /// Sets up (or, when the settings changed, restarts; when off, removes) the learned limit for
    /// this loop's share of the origin.
    func configureAdaptive(_ origin: OriginConfig, share: Int, loops: Int) {
        guard origin.adaptiveConcurrency else {
            adaptive = nil
            return
        }
        var c = AdaptiveConcurrency.Configuration()
        c.maximum = share
        c.minimum = max(1, (origin.minConcurrency + loops - 1) / loops)
        guard adaptive?.configuration != c else { return }
        adaptive = AdaptiveConcurrency(configuration: c, now: Int64(eventLoop.now.uptimeNanoseconds))
    }

    /// Requests holding or opening a connection now (in flight, not waiting).
    var busy: Int { inFlight - queued }

    /// True when the learned limit lets one more request go to the origin now.
    private var admits: Bool {
        guard let adaptive else { return true }
        return busy < adaptive.currentLimit
    }

    /// The learned limit now (the connection cap when not adaptive).
    var concurrencyLimit: Int { adaptive?.currentLimit ?? maxConnections }

    /// The origin answered a request sent `latency` ago; `overloaded` for 502-504 and timeouts.
    func originAnswered(latency: TimeAmount, overloaded: Bool, now: NIODeadline) {
        adaptive?.record(latency: latency.nanoseconds, overloaded: overloaded, now: Int64(now.uptimeNanoseconds))
    }

    private func started() {
        adaptive?.started(inFlight: busy)
    }

    /// An idle pooled connection, when there is one: the common case, and it needs no callback.
    /// Like ``acquire(now:priority:recheck:_:)``, it must end in ``release(_:reusable:)``.
    func acquireIdle() -> UpstreamConnection? {
        guard admits else { return nil }
        while let conn = idle.popLast() {
            if conn.channel.isActive {
                inFlight += 1
                started()
                return conn
            }
        }
        return nil
    }

    /// A connection for one request: an idle pooled one, a new one, or a place in the queue.
    /// Every acquisition other than `.unavailable` must end in ``release(_:reusable:)`` (when a
    /// connection was handed over) or ``abandon()`` (when the callback carried an error).
    func acquire(now: NIODeadline, priority: Bool = false, first vip: Bool = false, recheck: Bool = false, _ callback: @escaping Callback) -> Acquisition {
        if let conn = acquireIdle() { return .ready(conn) }
        if open < maxConnections, admits {
            open += 1
            inFlight += 1
            started()
            connect(callback)
            return .pending
        }
        if queued >= Self.maxWaiters {
            // Full: a known-good client takes the place of the newest unknown one, which is shed;
            // a member or key holder that of the newest unknown or, failing that, cleared one.
            guard priority || vip, let shed = queue.regular.popLast() ?? (vip ? queue.priority.popLast() : nil) else {
                return .unavailable(.originQueueFull)
            }
            shed.callback(.failure(PoolError.shed))  // its request calls abandon()
        }
        if vip {
            first.append(Waiter(enqueued: now, callback: callback))
        } else if priority {
            queue.priority.append(Waiter(enqueued: now, callback: callback))
        } else {
            queue.regular.append(Waiter(enqueued: now, callback: callback, recheck: recheck))
        }
        inFlight += 1
        scheduleWaiterExpiry()
        return .pending
    }

    /// Gives a connection back after a request. `reusable` when the exchange ended cleanly with
    /// keep-alive on both sides.
    func release(_ conn: UpstreamConnection, reusable: Bool) {
        inFlight -= 1
        conn.handler.delegate = nil
        // The last client may have left it paused (it was not reading fast enough): a pooled
        // connection always starts its next exchange reading.
        conn.handler.resumeReads()
        guard reusable, conn.channel.isActive else {
            conn.channel.close(promise: nil)
            return
        }
        if admits, let waiter = nextWaiter() {
            started()
            waiter.callback(.success(conn))
            return
        }
        idle.append(conn)
    }

    /// Takes a connection out of the pool for good (it became a WebSocket tunnel). It still counts
    /// against the origin's connection cap until it closes.
    func detach(_ conn: UpstreamConnection) {
        inFlight -= 1
        conn.handler.delegate = nil
    }

    /// A request that was counted in flight ended without a connection (connect failed, queue timeout).
    func abandon() {
        inFlight -= 1
    }

    /// A connection closed (by either side); frees its slot for a waiter.
    private func connectionClosed(_ conn: UpstreamConnection) {
        open -= 1
        if let i = idle.firstIndex(where: { $0 === conn }) { idle.remove(at: i) }
        if open < maxConnections, admits, let waiter = nextWaiter() {
            open += 1
            started()
            connect(waiter.callback)
        }
    }

    /// The next waiting request: known-good clients first, without starving the rest.
    private func nextWaiter() -> Waiter? {
        first.popFirst() ?? queue.popNext()
    }

    /// The site started challenging: requests that queued before, unchecked, go back to their
    /// handlers to be decided again (a flood admitted in the seconds before detection must not
    /// keep the origin busy for the length of the queue).
    func recheckWaiters() {
        guard queue.regular.contains(where: \.recheck) else { return }
        let all = queue.regular
        queue.regular.removeAll(keepingCapacity: true)
        var sent: [Waiter] = []
        for w in all {
            if w.recheck { sent.append(w) } else { queue.regular.append(w) }
        }
        for w in sent { w.callback(.failure(PoolError.recheck)) }
    }

    /// Requests waiting now.
    var queued: Int { queue.count + first.count }

    /// Closes idle connections (config reload removed the origin, or shutdown).
    func closeIdle() {
        let all = idle
        idle.removeAll()
        for c in all { c.channel.close(promise: nil) }
    }

    private var expiryScheduled = false

    private func scheduleWaiterExpiry() {
        let oldest = [first.first?.enqueued, queue.priority.first?.enqueued, queue.regular.first?.enqueued].compactMap { $0 }.min()
        guard !expiryScheduled, let oldest else { return }
        expiryScheduled = true
        eventLoop.assumeIsolated().scheduleTask(deadline: oldest + Self.maxWait) {
            self.expiryScheduled = false
            let now = self.eventLoop.now
            while let w = self.first.first, now - w.enqueued >= Self.maxWait {
                self.first.removeFirst()
                w.callback(.failure(PoolError.queueTimeout))
            }
            while let w = self.queue.priority.first, now - w.enqueued >= Self.maxWait {
                self.queue.priority.removeFirst()
                w.callback(.failure(PoolError.queueTimeout))
            }
            while let w = self.queue.regular.first, now - w.enqueued >= Self.maxWait {
                self.queue.regular.removeFirst()
                w.callback(.failure(PoolError.queueTimeout))
            }
            self.scheduleWaiterExpiry()
        }
    }

    private func connect(_ callback: @escaping Callback) {
        let future = connector.connect(
            OriginTarget(address: address, resolved: resolved, tls: tls, serverName: serverName, timeout: connectTimeout), on: eventLoop
        )
        future.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let channel):
                do {
                    let handler = try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
                    let conn = UpstreamConnection(channel: channel, handler: handler)
                    channel.closeFuture.assumeIsolated().whenComplete { _ in self.connectionClosed(conn) }
                    callback(.success(conn))
                } catch {
                    channel.close(promise: nil)
                    callback(.failure(error))
                }
            case .failure(let error):
                self.open -= 1
                // The slot is free again: let one waiter try a connection of its own.
                if self.open < self.maxConnections, self.admits, let waiter = self.nextWaiter() {
                    self.open += 1
                    self.connect(waiter.callback)
                }
                callback(.failure(error))
            }
        }
    }
}

/// Where and how to reach an origin, as the pool knows it now (TLS and timeout change on reload).
struct OriginTarget {
    let address: HostPort
    /// The address when the config names an IP; nil for a host name to resolve.
    let resolved: SocketAddress?
    let tls: NIOSSLContext?
    let serverName: String?
    let timeout: TimeAmount
}

/// Opens connections to origins. The channel it hands out is ready for one HTTP/1.1 exchange after
/// another: HTTP client codecs and an ``UpstreamHandler`` last in its pipeline, TLS done. The
/// gateway uses sockets (``SocketOriginConnector``); tests hand out embedded channels with the
/// same handlers, so the proxy path (pooling, queueing, caching, stale copies) runs on virtual time.
protocol OriginConnector {
    func connect(_ target: OriginTarget, on eventLoop: any EventLoop) -> EventLoopFuture<any Channel>
}

/// Adds what every origin channel carries after transport and TLS: the HTTP/1.1 client codecs
/// (no header validation on the way out: the forwarded head is built by the gateway) and the
/// ``UpstreamHandler``.
func addOriginHTTPHandlers(_ pipeline: ChannelPipeline.SynchronousOperations) throws {
    try pipeline.addHTTPClientHandlers(leftOverBytesStrategy: .forwardBytes, enableOutboundHeaderValidation: false)
    try pipeline.addHandler(UpstreamHandler())
}

/// TCP (and TLS when the origin asks for it) from the pool's event loop.
struct SocketOriginConnector: OriginConnector {
    func connect(_ target: OriginTarget, on eventLoop: any EventLoop) -> EventLoopFuture<any Channel> {
        guard let base = ClientBootstrap(validatingGroup: eventLoop) else {
            return eventLoop.makeFailedFuture(PoolError.unsupportedEventLoop)
        }
        let tls = target.tls
        let serverName = target.serverName
        let handshakeTimeout = target.timeout
        let bootstrap = base
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(target.timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                        try channel.pipeline.syncOperations.addHandler(OriginHandshakeWaiter(timeout: handshakeTimeout))
                    }
                    try addOriginHTTPHandlers(channel.pipeline.syncOperations)
                }
            }
        let connected: EventLoopFuture<any Channel>
        if let resolved = target.resolved {
            connected = bootstrap.connect(to: resolved)
        } else {
            connected = bootstrap.connect(host: target.address.host, port: target.address.port)
        }
        // Over TLS, a connection is handed out once its handshake (and certificate check) is done.
        return tls == nil ? connected : connected.flatMap { channel in
            channel.pipeline.handler(type: OriginHandshakeWaiter.self).flatMap { $0.ready }.map { channel }
        }
    }
}

/// Completes `ready` when the TLS handshake with the origin is done; fails it (and closes the
/// connection) on a handshake error, such as a certificate that does not verify, or a timeout.
final class OriginHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let timeout: TimeAmount
    private var promise: EventLoopPromise<Void>?
    private var timer: Scheduled<Void>?
    /// Succeeds once the handshake completed.
    private(set) var ready: EventLoopFuture<Void>!

    init(timeout: TimeAmount) { self.timeout = timeout }

    func handlerAdded(context: ChannelHandlerContext) {
        let promise = context.eventLoop.makePromise(of: Void.self)
        self.promise = promise
        ready = promise.futureResult
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            self.finish(.failure(OriginTLSError(message: "no TLS handshake with the origin within \(self.timeout)")))
            context.close(promise: nil)
        }
    }

    private func finish(_ result: Result<Void, any Error>) {
        timer?.cancel()
        timer = nil
        guard let p = promise else { return }
        promise = nil
        p.completeWith(result)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            finish(.success(()))
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if promise != nil {
            finish(.failure(OriginTLSError(message: "TLS handshake with the origin failed: \(error)")))
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.failure(OriginTLSError(message: "the origin closed the connection during the TLS handshake")))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }
}

@available(*, unavailable)
extension OriginHandshakeWaiter: Sendable {}

/// Why a pool could not give a connection.
enum PoolError: Error {
    case queueTimeout
    /// The site's mode changed while the request waited: decide it again.
    case recheck
    /// The event loop cannot make sockets (an embedded loop in tests).
    case unsupportedEventLoop
    /// A known-good client needed the place in a full queue.
    case shed
}

/// One keep-alive connection to an origin.
final class UpstreamConnection {
    let channel: any Channel
    let handler: UpstreamHandler
    /// Requests sent on this connection so far.
    var requestsSent = 0

    init(channel: any Channel, handler: UpstreamHandler) {
        self.channel = channel
        self.handler = handler
    }
}

@available(*, unavailable)
extension UpstreamConnection: Sendable {}

@available(*, unavailable)
extension OriginPool: Sendable {}
