import NIOCore

/// The slow-client defences of one connection as a state machine: header deadline (slowloris),
/// body deadline and minimum body rate (slow POST), keep-alive idle limit, and send limit (slow
/// read). Time is passed in, so it is tested by stepping a clock; the data plane keeps one lazy
/// timer per connection and asks ``check(now:)`` when it fires.
public struct ConnectionTimeouts: Sendable {
    /// Where the connection is in its request cycle.
    enum Phase: Equatable, Sendable {
        /// Between requests, since the given time.
        case idle(since: NIODeadline)
        /// Receiving a request head that started at the given time.
        case head(started: NIODeadline)
        /// Receiving a body: started at `started`; the rate window opened at `windowStart` and has seen `windowBytes`.
        case body(started: NIODeadline, windowStart: NIODeadline, windowBytes: Int)
        /// Request received; the origin's answer is awaited or being sent. No client read deadline.
        case waiting
    }

    /// What a check concluded.
    public enum Verdict: Equatable, Sendable {
        /// Nothing expired; check again at the deadline (nil: no deadline right now).
        case ok(nextCheck: NIODeadline?)
        /// A limit expired; the connection is to be closed for this reason.
        case expired(RejectReason)
    }

    private(set) var phase: Phase
    private var unwritableSince: NIODeadline? = nil
    /// The limits in force (from the listener for connection keys, the site for body keys).
    public var limits: Limits

    /// A fresh connection, idle since `now` (a client that connects and sends nothing is idle).
    public init(limits: Limits, now: NIODeadline) {
        self.limits = limits
        // A new connection gets the header timeout, not the longer keep-alive idle timeout.
        self.phase = .head(started: now)
    }

    /// Bytes arrived from the client.
    public mutating func bytesReceived(now: NIODeadline) {
        if case .idle = phase { phase = .head(started: now) }
    }

    /// A complete request head arrived; `expectsBody` when a body follows.
    public mutating func headReceived(now: NIODeadline, expectsBody: Bool) {
        phase = expectsBody ? .body(started: now, windowStart: now, windowBytes: 0) : .waiting
    }

    /// Body bytes arrived.
    public mutating func bodyReceived(count: Int, now: NIODeadline) {
        if case .body(let started, let windowStart, let bytes) = phase {
            let total = Int(Int64.saturatingSum(Int64(bytes), Int64(max(0, count))))
            phase = .body(started: started, windowStart: windowStart, windowBytes: total)
        }
    }

    /// The whole request arrived.
    public mutating func requestEnded() {
        phase = .waiting
    }

    /// The response was fully written; the connection is idle again.
    public mutating func responseEnded(now: NIODeadline) {
        phase = .idle(since: now)
    }

    /// The client connection's writability changed (false: the client is not reading fast enough).
    public mutating func writabilityChanged(isWritable: Bool, now: NIODeadline) {
        unwritableSince = isWritable ? nil : (unwritableSince ?? now)
    }

    /// Evaluates every deadline at `now`.
    public mutating func check(now: NIODeadline) -> Verdict {
        var next: NIODeadline? = nil
        func consider(_ d: NIODeadline) { next = next.map { min($0, d) } ?? d }

        if let since = unwritableSince {
            let deadline = since + limits.sendTimeout
            if now >= deadline { return .expired(.sendTimeout) }
            consider(deadline)
        }
        switch phase {
        case .idle(let since):
            let deadline = since + limits.idleTimeout
            if now >= deadline { return .expired(.idleTimeout) }
            consider(deadline)
        case .head(let started):
            let deadline = started + limits.headerTimeout
            if now >= deadline { return .expired(.headerTimeout) }
            consider(deadline)
        case .body(let started, var windowStart, var windowBytes):
            let deadline = started + limits.bodyTimeout
            if now >= deadline { return .expired(.bodyTimeout) }
            consider(deadline)
            if limits.bodyMinRate > 0 {
                let windowEnd = windowStart + Limits.rateWindow
                if now >= windowEnd {
                    let needed = Self.bytesNeeded(rate: limits.bodyMinRate, window: Limits.rateWindow)
                    if Int64(windowBytes) < needed { return .expired(.bodyTooSlow) }
                    windowStart = now
                    windowBytes = 0
                    phase = .body(started: started, windowStart: windowStart, windowBytes: windowBytes)
                }
                consider(windowStart + Limits.rateWindow)
            }
        case .waiting:
            break
        }
        return .ok(nextCheck: next)
    }

    /// Bytes a body must bring in `window` at `rate` bytes per second; saturates (a rate no client
    /// can reach needs `Int64.max` bytes) instead of trapping.
    static func bytesNeeded(rate: Int, window: TimeAmount) -> Int64 {
        Int64(saturating: Double(rate) * Double(window.nanoseconds) / 1e9)
    }
}
