#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Fixed-size summaries of a stream of events: their memory does not grow with the number of
/// distinct sources, paths or agents seen, however many an attack brings.

/// A 64-bit mix of a 64-bit value (SplitMix64's finaliser): spreads keys that differ in a few bits.
@inlinable
public func mix64(_ value: UInt64) -> UInt64 {
    var z = value &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// FNV-1a over bytes, then mixed: a cheap stable hash for paths and user agents.
@inlinable
public func hashBytes<S: Sequence>(_ bytes: S) -> UInt64 where S.Element == UInt8 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes {
        h ^= UInt64(b)
        h = h &* 0x0000_0100_0000_01B3
    }
    return mix64(h)
}

/// Counts distinct items (HyperLogLog, 2^10 one-byte registers: about 3% standard error, 1 KiB).
/// Two sketches merge by taking the larger register, so per-loop sketches add up exactly.
public struct HyperLogLog: Sendable, Equatable {
    static let bits = 10
    static let count = 1 << bits
    private var registers: [UInt8]

    /// An empty sketch.
    public init() { registers = [UInt8](repeating: 0, count: Self.count) }

    /// Adds an item by its 64-bit hash (already mixed).
    @inlinable
    public mutating func add(hash: UInt64) {
        addHash(hash)
    }

    @usableFromInline
    mutating func addHash(_ hash: UInt64) {
        let index = Int(hash >> UInt64(64 - Self.bits))
        let rest = hash << UInt64(Self.bits) | (1 << UInt64(Self.bits - 1))
        let rank = UInt8(rest.leadingZeroBitCount + 1)
        if registers[index] < rank { registers[index] = rank }
    }

    /// Adds the union of `other`.
    public mutating func merge(_ other: HyperLogLog) {
        for i in 0..<Self.count where other.registers[i] > registers[i] { registers[i] = other.registers[i] }
    }

    /// Estimated number of distinct items added.
    public var estimate: Int {
        let m = Double(Self.count)
        var sum = 0.0
        var zeros = 0
        for r in registers {
            sum += 1.0 / Double(UInt64(1) << UInt64(r))
            if r == 0 { zeros += 1 }
        }
        let alpha = 0.7213 / (1 + 1.079 / m)
        let raw = alpha * m * m / sum
        if raw <= 2.5 * m, zeros > 0 {
            return Int((m * log(m / Double(zeros))).rounded())  // linear counting for small sets
        }
        return Int(raw.rounded())
    }

    /// Forgets everything.
    public mutating func reset() {
        for i in 0..<Self.count { registers[i] = 0 }
    }

    /// The registers (1,024 bytes), for sharing a sketch with other nodes (the fleet's traffic
    /// summaries): a sketch rebuilt from them merges exactly like the original.
    public var registerBytes: [UInt8] { registers }

    /// The sketch whose registers are `bytes`; nil unless there are exactly 1,024 of them.
    public init?(registerBytes bytes: [UInt8]) {
        guard bytes.count == Self.count else { return nil }
        registers = bytes
    }
}

/// The heaviest keys of a stream in `capacity` counters (Space-Saving, Metwally et al. 2005): a key
/// that takes more than 1/capacity of the events is always kept; counts may overestimate by the
/// count of the key it replaced (kept as `error`).
public struct SpaceSaving<Key: Hashable & Sendable>: Sendable {
    /// One tracked key.
    public struct Entry: Sendable, Equatable {
        /// The key.
        public var key: Key
        /// Events counted for it (an upper bound).
        public var count: Int
        /// How much of `count` may belong to keys it replaced.
        public var error: Int
    }

    public let capacity: Int
    private var entries: [Entry] = []
    private var index: [Key: Int] = [:]

    /// A summary keeping at most `capacity` keys.
    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        entries.reserveCapacity(self.capacity)
        index.reserveCapacity(self.capacity)
    }

    /// Counts `weight` events for `key`.
    public mutating func add(_ key: Key, weight: Int = 1) {
        if let i = index[key] {
            entries[i].count += weight
            return
        }
        if entries.count < capacity {
            index[key] = entries.count
            entries.append(Entry(key: key, count: weight, error: 0))
            return
        }
        var m = 0
        for i in 1..<entries.count where entries[i].count < entries[m].count { m = i }
        let floor = entries[m].count
        index[entries[m].key] = nil
        entries[m] = Entry(key: key, count: floor + weight, error: floor)
        index[key] = m
    }

    /// Adds every key of `other` with its count.
    public mutating func merge(_ other: SpaceSaving<Key>) {
        for e in other.entries { add(e.key, weight: e.count) }
    }

    /// The `n` heaviest keys, heaviest first.
    public func top(_ n: Int) -> [Entry] {
        Array(entries.sorted { $0.count > $1.count }.prefix(n))
    }

    /// True when nothing was counted.
    public var isEmpty: Bool { entries.isEmpty }

    /// Forgets everything (keeps the storage).
    public mutating func reset() {
        entries.removeAll(keepingCapacity: true)
        index.removeAll(keepingCapacity: true)
    }
}
