/// The indexing shared by the guards' fixed-size tables (rate limits, known-good clients, behaviour
/// scores): a key hashes, with a per-process random seed so an attacker cannot aim at one set, to a
/// set of `ways` consecutive slots. Fixed memory, O(1) per lookup, no allocation.
struct SetAssociativeIndex: Sendable {
    /// Slots per set.
    static let ways = 4
    /// Number of sets minus one (the count is a power of two).
    let setMask: Int
    private let seed: UInt64

    /// An index over at least `capacity` slots; ``slotCount`` says how many.
    init(capacity: Int, seed: UInt64) {
        var sets = 1
        while sets * Self.ways < max(capacity, Self.ways) { sets <<= 1 }
        self.setMask = sets - 1
        self.seed = seed | 1
    }

    /// Total slots.
    var slotCount: Int { (setMask + 1) * Self.ways }

    /// The first slot of `key`'s set; the set is `base..<base + ways`.
    func base(for key: IPAddress) -> Int {
        var h = (key.high &* 0x9E37_79B9_7F4A_7C15) ^ key.low ^ seed
        h = (h ^ (h >> 31)) &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 29
        return (Int(truncatingIfNeeded: h) & setMask) &* Self.ways
    }
}

/// A fixed-size, set-associative table of `Value`s keyed by 128-bit keys (addresses, subnets,
/// hashed credentials or fingerprints): the one shape behind the token buckets, the known-good
/// table and the behaviour scores. Memory is fixed at construction and never grows with the number
/// of distinct keys; a key not present takes an empty slot of its set or the one its owner ranks
/// lowest (each table says which entries it can best afford to forget). No allocation after `init`.
struct SetAssociativeTable<Value>: Sendable where Value: Sendable {
    struct Slot: Sendable {
        var high: UInt64
        var low: UInt64
        var used: Bool
        var value: Value
    }

    private var slots: [Slot]
    private let index: SetAssociativeIndex

    /// A table of at least `capacity` slots (rounded up to a power of two times ``SetAssociativeIndex/ways``).
    init(capacity: Int, seed: UInt64, empty: Value) {
        index = SetAssociativeIndex(capacity: capacity, seed: seed)
        slots = [Slot](repeating: Slot(high: 0, low: 0, used: false, value: empty), count: index.slotCount)
    }

    /// Number of slots (the most keys held at once).
    var capacity: Int { slots.count }

    /// Slots in use.
    var count: Int { slots.reduce(0) { $0 + ($1.used ? 1 : 0) } }

    /// The slot holding `key`, if any.
    @inline(__always)
    func find(_ key: IPAddress) -> Int? {
        let base = index.base(for: key)
        for i in base..<(base + SetAssociativeIndex.ways) where slots[i].used && slots[i].high == key.high && slots[i].low == key.low {
            return i
        }
        return nil
    }

    /// The slot of `key`, taking one for it when absent: an empty slot of its set, else the one
    /// whose value `rank` puts lowest (the first of equals), filled with `fresh()`. `inserted` says
    /// which happened.
    @inline(__always)
    mutating func slot<R: Comparable>(for key: IPAddress, rank: (Value) -> R, fresh: () -> Value) -> (index: Int, inserted: Bool) {
        let base = index.base(for: key)
        var empty = -1
        var victim = base
        var lowest: R?
        for i in base..<(base + SetAssociativeIndex.ways) {
            guard slots[i].used else {
                if empty < 0 { empty = i }
                continue
            }
            if slots[i].high == key.high, slots[i].low == key.low { return (i, false) }
            guard empty < 0 else { continue }
            let r = rank(slots[i].value)
            if lowest == nil || r < lowest! {
                lowest = r
                victim = i
            }
        }
        if empty >= 0 { victim = empty }
        slots[victim] = Slot(high: key.high, low: key.low, used: true, value: fresh())
        return (victim, true)
    }

    /// The value in slot `i` (from ``find(_:)`` or ``slot(for:rank:fresh:)``), read and changed in place.
    subscript(i: Int) -> Value {
        get { slots[i].value }
        _modify { yield &slots[i].value }
    }

    /// Forgets `key`.
    mutating func remove(_ key: IPAddress) {
        if let i = find(key) { slots[i].used = false }
    }
}
