import NIOCore
import NIOHTTP1
import RampartCore

/// Where the exchange on a client connection is. A connection serves one request at a time; what
/// only one state has travels with that state, so a state without it cannot be written: no origin
/// connection outside `proxying`, no pool outside `connecting` and `proxying`.
enum ExchangeState {
    /// Waiting for a request head.
    case idle
    /// Collecting a small request body before an origin connection is taken.
    case buffering
    /// Waiting for a connection of `pool` (a new one, or a place in its queue); body parts kept.
    case connecting(OriginPool)
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
