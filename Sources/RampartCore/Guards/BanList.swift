import NIOCore

/// Automatic bans: a source that keeps tripping limits is refused at connection accept, before any
/// byte is parsed, for a time that doubles on each repeat (up to a cap).
///
/// Two fixed-size pieces, so memory never grows with the number of sources: a strike table (token
/// buckets: every refusal takes a token; an empty bucket means "ban") and the ban list itself,
/// capped in entries (when full, the ban closest to expiry makes room). Time is passed in.
public struct BanPolicy: Hashable, Sendable {
    /// Refusals a source may collect in a burst before it is banned.
    public var strikes: Double = 100
    /// Refusals per second a source may keep collecting without being banned.
    public var strikesPerSecond: Double = 10
    /// First ban length.
    public var duration: TimeAmount = .seconds(60)
    /// Longest ban (repeat offenders double up to this).
    public var maxDuration: TimeAmount = .hours(1)
    /// Most bans held at once.
    public var capacity = 100_000
    /// False turns automatic bans off.
    public var enabled = true

    /// The documented defaults.
    public init() {}
}

/// The strike counting half: per event loop.
public struct StrikeCounter: Sendable {
    private var table: TokenBucketTable

    /// Buckets sized by `policy`, split over `loops` event loops.
    public init(policy: BanPolicy, loops: Int, capacity: Int = 65_536) {
        let n = Double(max(1, loops))
        table = TokenBucketTable(capacity: capacity, ratePerSecond: policy.strikesPerSecond / n, burst: max(1, (policy.strikes / n).rounded(.up)))
    }

    /// Records one refusal of `source`; true when it has used up its strikes and is to be banned.
    public mutating func strike(_ source: IPAddress, now: Int64) -> Bool {
        if case .limited = table.take(source, now: now) { return true }
        return false
    }
}

/// The ban list half: kept on the accept loop, consulted for every accepted connection.
public struct BanList: Sendable {
    struct Entry {
        var until: Int64
        var level: Int
    }

    private var entries: [IPAddress: Entry] = [:]
    /// The policy (durations, capacity).
    public var policy: BanPolicy

    /// An empty list.
    public init(policy: BanPolicy) { self.policy = policy }

    /// True when `source` is banned at `now`.
    public func isBanned(_ source: IPAddress, now: Int64) -> Bool {
        guard let e = entries[source] else { return false }
        return now < e.until
    }

    /// Bans `source` from `now`; a source banned before (whose entry is still held) gets twice
    /// its previous length, up to `maxDuration`. Returns the ban's length. Every step saturates:
    /// no policy, however extreme, makes a ban trap, wrap around or end before it starts.
    @discardableResult
    public mutating func ban(_ source: IPAddress, now: Int64) -> TimeAmount {
        var level = 0
        if let e = entries[source] {
            if now < e.until { return .nanoseconds(Int64.saturatingDifference(e.until, now)) }  // already banned
            level = e.level + 1
        }
        if entries.count >= policy.capacity, entries[source] == nil { evict(now: now) }
        let length = Self.length(base: policy.duration, level: level, cap: policy.maxDuration)
        entries[source] = Entry(until: Int64.saturatingSum(now, length), level: level)
        return .nanoseconds(length)
    }

    /// `base` doubled `level` times (at most 16), capped at `cap`, at least 1 ns, in nanoseconds.
    static func length(base: TimeAmount, level: Int, cap: TimeAmount) -> Int64 {
        let doubled = Int64.saturatingProduct(max(1, base.nanoseconds), 1 << Int64(min(max(level, 0), 16)))
        return max(1, min(cap.nanoseconds, doubled))
    }

    /// The ban of `source` (end in the list's clock, repeat level), if one is held.
    public func entry(_ source: IPAddress) -> (until: Int64, level: Int)? {
        entries[source].map { ($0.until, $0.level) }
    }

    /// Puts back a ban read from storage: ends at `until` (the list's clock), repeat `level`.
    public mutating func restore(_ source: IPAddress, until: Int64, level: Int, now: Int64) {
        if entries.count >= policy.capacity, entries[source] == nil { evict(now: now) }
        entries[source] = Entry(until: until, level: level)
    }

    /// Bans `source` for `length` (an operator's ban, at least 1 ns); returns its end in the list's
    /// clock (saturated: a length past the end of the clock bans until its end).
    @discardableResult
    public mutating func ban(_ source: IPAddress, now: Int64, length: TimeAmount) -> Int64 {
        if entries.count >= policy.capacity, entries[source] == nil { evict(now: now) }
        let level = entries[source]?.level ?? 0
        let until = Int64.saturatingSum(now, max(1, length.nanoseconds))
        entries[source] = Entry(until: until, level: level)
        return until
    }

    /// Bans in force at `now`: address, end (the list's clock), repeat level.
    public func active(now: Int64) -> [(source: IPAddress, until: Int64, level: Int)] {
        entries.compactMap { now < $0.value.until ? ($0.key, $0.value.until, $0.value.level) : nil }
    }

    /// Lifts a ban.
    public mutating func unban(_ source: IPAddress) {
        entries.removeValue(forKey: source)
    }

    /// Bans in force at `now`.
    public func activeCount(now: Int64) -> Int {
        entries.values.reduce(0) { $0 + (now < $1.until ? 1 : 0) }
    }

    /// Entries held (active, or expired but remembered for repeat doubling); never above the capacity.
    public var count: Int { entries.count }

    private mutating func evict(now: Int64) {
        // Expired entries first; otherwise the ban closest to its end.
        let memory = max(0, policy.maxDuration.nanoseconds)
        if let expired = entries.first(where: { now >= Int64.saturatingSum($0.value.until, memory) })?.key {
            entries.removeValue(forKey: expired)
            return
        }
        if let victim = entries.min(by: { $0.value.until < $1.value.until })?.key {
            entries.removeValue(forKey: victim)
        }
    }
}
