/// A small direct-mapped cache of lookups, one per event loop: no locks, fixed memory
/// (`slots` entries of 32 bytes whatever the number of distinct sources). A new address takes its
/// slot from whatever was there. Databases only change on reload, which builds a new cache.
public struct GeoLookupCache {
    private struct Slot {
        var high: UInt64 = 0
        var low: UInt64 = 0
        var asn: UInt32 = 0
        var country: UInt16 = 0
        var used = false
    }

    private var slots: [Slot]
    private let mask: Int
    /// Lookups answered from the cache, and from the databases.
    public private(set) var hits = 0
    public private(set) var misses = 0

    /// A cache of `slots` entries rounded up to a power of two (16 to 1,048,576).
    public init(slots: Int) {
        var n = 16
        while n < min(max(slots, 16), 1 << 20) { n <<= 1 }
        self.slots = [Slot](repeating: Slot(), count: n)
        self.mask = n - 1
    }

    /// Number of slots.
    public var capacity: Int { slots.count }

    /// The info for `address`, computed by `resolve` on a miss.
    @inline(__always)
    public mutating func lookup(_ address: IPAddress, resolve: (IPAddress) -> GeoInfo) -> GeoInfo {
        let mixed = (address.high &* 0x9E37_79B9_7F4A_7C15) ^ (address.low &* 0xC2B2_AE3D_27D4_EB4F)
        let i = Int(truncatingIfNeeded: mixed >> 32) & mask
        let s = slots[i]
        if s.used, s.high == address.high, s.low == address.low {
            hits &+= 1
            return GeoInfo(country: s.country == 0 ? nil : CountryCode(packedValue: s.country), asn: s.asn == 0 ? nil : s.asn)
        }
        misses &+= 1
        let info = resolve(address)
        slots[i] = Slot(high: address.high, low: address.low, asn: info.asn ?? 0, country: info.country?.packed ?? 0, used: true)
        return info
    }
}
