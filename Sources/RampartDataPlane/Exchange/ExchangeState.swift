import NIOCore
import NIOHTTP1
import RampartCore

/// Where the exchange on a client connection is. A connection serves one request at a time; what
/// only one state has travels with that state, so a state without it cannot be written: no origin
/// connection outside `proxying`, no pool outside `connecting` and `proxying`, no kept body parts
/// outside `buffering` and `connecting`.
///
/// The events of the request body move it through mutating transitions that return what the
/// handler must do (``BodyAction``, ``EndAction``); the handler only carries those out.
enum ExchangeState {
    /// Waiting for a request head.
    case idle
    /// Collecting a small request body with no origin connection yet (before one is asked for, or
    /// between a failed connection and the next try).
    case buffering(PendingBody)
    /// Waiting for a connection of `pool` (a new one, or a place in its queue); body parts kept.
    case connecting(OriginPool, PendingBody)
    /// Streaming to and from an origin.
    case proxying(OriginLeg)
    /// Answered by the gateway while the client still sends a body, which is dropped.
    case discarding
    /// Rate-limited with the tarpit action: the answer goes out later.
    case held
    /// Waiting for another request's fetch of the same cache key.
    case coalescing
    /// Upgraded (WebSocket): bytes flow through glue handlers; the client handler has left.
    case tunnel
    /// The connection is closing or closed.
    case closed

    var isIdle: Bool {
        if case .idle = self { return true }
        return false
    }

    var isClosed: Bool {
        if case .closed = self { return true }
        return false
    }

    /// The origin leg, while proxying.
    var leg: OriginLeg? {
        if case .proxying(let leg) = self { return leg }
        return nil
    }

    /// Waiting for a connection of this very pool (a late callback of another pool is stale).
    func isConnecting(to pool: OriginPool) -> Bool {
        if case .connecting(let waiting, _) = self { return waiting === pool }
        return false
    }

    // MARK: - Transitions

    /// What the handler does with a part of the request body.
    enum BodyAction {
        /// Stream it to the origin of this leg.
        case forward(OriginLeg)
        /// Kept until a connection is there; past the kept-bytes bound, client reads are held.
        case kept(holdReads: Bool)
        /// The collected body has outgrown what is kept: take an origin connection now and stream.
        case streamNow
        /// The body is larger than the site allows: refuse (or cut short an answer under way),
        /// giving back the origin leg if there is one.
        case tooLarge(OriginLeg?)
        /// Nobody wants it (answered already, tunnel, closing): dropped.
        case dropped
    }

    /// A part of the request body arrived; `overLimit` says the body so far exceeds the site's bound.
    mutating func requestBody(_ buffer: ByteBuffer, overLimit: Bool) -> BodyAction {
        switch self {
        case .proxying(let leg):
            return overLimit ? .tooLarge(leg) : .forward(leg)
        case .connecting(let pool, var body):
            if overLimit { return .tooLarge(nil) }
            self = .closed  // the kept parts are uniquely referenced while they grow
            body.append(.body(.byteBuffer(buffer)))
            self = .connecting(pool, body)
            return .kept(holdReads: body.isOverLimit)
        case .buffering(var body):
            if overLimit { return .tooLarge(nil) }
            self = .closed
            body.append(.body(.byteBuffer(buffer)))
            self = .buffering(body)
            return body.isOverLimit ? .streamNow : .kept(holdReads: false)
        case .idle, .discarding, .held, .coalescing, .tunnel, .closed:
            return .dropped
        }
    }

    /// What the handler does when the request's end arrives.
    enum EndAction {
        /// Send the end to the origin of this leg and wait for its response.
        case forward(OriginLeg)
        /// Kept with the body; goes out when the connection is there.
        case kept
        /// The whole body is collected: take an origin connection now.
        case proceed
        /// The answer went out before the body ended: the connection is ready for the next request.
        case becameIdle
        /// Nothing to do.
        case none
    }

    mutating func requestEnd(_ trailers: HTTPHeaders?) -> EndAction {
        switch self {
        case .proxying(let leg):
            return .forward(leg)
        case .connecting(let pool, var body):
            self = .closed
            body.append(.end(trailers))
            self = .connecting(pool, body)
            return .kept
        case .buffering(var body):
            self = .closed
            body.append(.end(trailers))
            self = .buffering(body)
            return .proceed
        case .discarding:
            self = .idle
            return .becameIdle
        case .idle, .held, .coalescing, .tunnel, .closed:
            return .none
        }
    }

    /// Starts collecting a body (from idle; collecting already is left as it is).
    mutating func startBuffering() {
        if case .buffering = self { return }
        self = .buffering(PendingBody())
    }

    /// Asks `pool` for a connection, keeping what was collected of the body (also when a failed
    /// pool is left for another).
    mutating func startConnecting(to pool: OriginPool) {
        switch self {
        case .buffering(let body), .connecting(_, let body):
            self = .connecting(pool, body)
        default:
            self = .connecting(pool, PendingBody())
        }
    }

    /// The connection did not come: back to holding the body with none, for a retry or an answer.
    mutating func connectFailed() {
        if case .connecting(_, let body) = self { self = .buffering(body) }
    }

    /// A connection is there: proxying on it; returns the kept body parts, to be sent first.
    mutating func startProxying(_ leg: OriginLeg) -> PendingBody {
        var kept = PendingBody()
        switch self {
        case .buffering(let body), .connecting(_, let body): kept = body
        default: break
        }
        self = .proxying(leg)
        return kept
    }

    /// Leaves the origin (its connection goes back to the pool): the rest of the request body, if
    /// any, is dropped. Returns the leg left, nil when there was none.
    mutating func leaveOrigin() -> OriginLeg? {
        guard case .proxying(let leg) = self else { return nil }
        self = .discarding
        return leg
    }

    /// The gateway answers this request itself: kept body parts are dropped, and the rest of the
    /// body, if it is still coming, is read and dropped.
    mutating func answeredLocally(requestEnded: Bool) {
        switch self {
        case .buffering, .connecting:
            self = requestEnded ? .idle : .discarding
        case .idle, .held, .coalescing:
            if !requestEnded { self = .discarding }
        case .proxying, .discarding, .tunnel, .closed:
            break
        }
    }
}

/// The origin side of a request being proxied: the pool the connection came from and goes back
/// to, and what the origin's response said about the connection.
struct OriginLeg {
    let pool: OriginPool
    let connection: UpstreamConnection
    /// When the request went to the origin (its response time feeds the pool's learned limit).
    let sentAt: NIODeadline
    /// The origin's response allows another request on this connection.
    var keepAlive = true
    /// The origin answered the upgrade with 101; the tunnel starts at the end of that response.
    var upgradeAccepted = false
}

/// Request body parts kept while no origin connection is there yet (buffering, connecting).
struct PendingBody {
    private(set) var parts = CircularBuffer<HTTPClientRequestPart>()
    private(set) var bytes = 0
    /// Bytes kept before a small body is streamed instead, or client reads are held.
    static let limit = 64 * 1024

    var isOverLimit: Bool { bytes > Self.limit }

    mutating func append(_ part: HTTPClientRequestPart) {
        if case .body(.byteBuffer(let buffer)) = part { bytes += buffer.readableBytes }
        parts.append(part)
    }

    mutating func popFirst() -> HTTPClientRequestPart? {
        let part = parts.popFirst()
        if parts.isEmpty { bytes = 0 }
        return part
    }

    mutating func removeAll() {
        parts.removeAll()
        bytes = 0
    }
}

/// What the gateway answered a request with, for the access log.
struct AnswerRecord {
    var status = 0
    var bytes = 0
    /// `proxied`, `cache`, `cache_stale`, `rejected`, `challenged`, `cleared`, `https_redirect`.
    var decision = "proxied"
    /// The refusal reason, when refused.
    var reason: String?
}
