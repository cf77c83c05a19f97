import NIOCore

/// Clients the origin has vouched for: addresses it answered with success several times, the first
/// of them a while ago, without limit violations in between. They go ahead of unknown clients in the origin queue, so that when the
/// origin is saturated the people who were already using the site keep being served.
///
/// Learned passively and cheaply, in a fixed-size set-associative table like the rate limiter's (a
/// flood of new addresses evicts other new addresses, not the established ones); entries expire.
/// Time is passed in.
public struct KnownGoodTable: Sendable {
    struct Slot {
        var high: UInt64 = 0
        var low: UInt64 = 0
        var successes: UInt16 = 0
        var firstSeen: Int64 = 0
        var lastSeen: Int64 = 0
        var used = false
    }

    static let ways = 4
    private var slots: [Slot]
    private let setMask: Int
    private let seed: UInt64
    /// Successful answers after which a client counts as known-good.
    public let threshold: UInt16
    /// How long a client stays known-good without a new success, nanoseconds.
    public let lifetime: Int64
    /// How long before its first success a client must have been around, nanoseconds: sources that
    /// appear with an attack do not jump the queue within it.
    public let minimumAge: Int64

    /// A table of at least `capacity` slots.
    public init(
        capacity: Int = 65_536,
        threshold: Int = 3,
        minimumAge: TimeAmount = .seconds(30),
        lifetime: TimeAmount = .hours(1),
        seed: UInt64 = UInt64.random(in: 0...UInt64.max)
    ) {
        self.minimumAge = minimumAge.nanoseconds
        var sets = 1
        while sets * Self.ways < max(capacity, Self.ways) { sets <<= 1 }
        slots = [Slot](repeating: Slot(), count: sets * Self.ways)
        setMask = sets - 1
        self.seed = seed | 1
        self.threshold = UInt16(max(1, min(threshold, 1000)))
        self.lifetime = lifetime.nanoseconds
    }

    private func set(for key: IPAddress) -> Int {
        var h = (key.high &* 0x9E37_79B9_7F4A_7C15) ^ key.low ^ seed
        h = (h ^ (h >> 31)) &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 29
        return (Int(truncatingIfNeeded: h) & setMask) &* Self.ways
    }

    /// True when `client` has earned priority and not lost it.
    public func contains(_ client: IPAddress, now: Int64) -> Bool {
        let base = set(for: client)
        for i in base..<(base + Self.ways) where slots[i].used && slots[i].high == client.high && slots[i].low == client.low {
            return slots[i].successes >= threshold && now - slots[i].lastSeen < lifetime && now - slots[i].firstSeen >= minimumAge
        }
        return false
    }

    /// The origin answered `client` with success.
    public mutating func recordSuccess(_ client: IPAddress, now: Int64) {
        let base = set(for: client)
        var victim = base
        var victimScore = Int64.max
        for i in base..<(base + Self.ways) {
            if slots[i].used, slots[i].high == client.high, slots[i].low == client.low {
                if now - slots[i].lastSeen >= lifetime {
                    slots[i].successes = 0
                    slots[i].firstSeen = now
                }
                slots[i].successes = min(slots[i].successes &+ 1, 1000)
                slots[i].lastSeen = now
                return
            }
            // Prefer empty or expired slots, then those with the fewest successes, then the oldest.
            let expired = !slots[i].used || now - slots[i].lastSeen >= lifetime
            let score = expired ? Int64.min : Int64(slots[i].successes) << 40 | (slots[i].lastSeen >> 24)
            if score < victimScore {
                victimScore = score
                victim = i
            }
        }
        slots[victim] = Slot(high: client.high, low: client.low, successes: 1, firstSeen: now, lastSeen: now, used: true)
    }

    /// `client` tripped a limit: it starts over.
    public mutating func forget(_ client: IPAddress) {
        let base = set(for: client)
        for i in base..<(base + Self.ways) where slots[i].used && slots[i].high == client.high && slots[i].low == client.low {
            slots[i].used = false
        }
    }
}
