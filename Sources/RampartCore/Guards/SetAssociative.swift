/// The indexing shared by the guards' fixed-size tables (rate limits, known-good clients): a key
/// hashes, with a per-process random seed so an attacker cannot aim at one set, to a set of
/// `ways` consecutive slots. Fixed memory, O(1) per lookup, no allocation.
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
