/// A client or origin IP address in a fixed 16-byte form.
///
/// IPv4 addresses are stored as IPv4-mapped IPv6 (`::ffff:a.b.c.d`), so one value type, one hash and
/// one comparison serve both families. The value is two machine words: cheap to hash and to store in
/// the bounded per-client tables of the guards.
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// High 64 bits of the 128-bit address.
    public var high: UInt64
    /// Low 64 bits of the 128-bit address.
    public var low: UInt64

    static let v4MappedHigh: UInt64 = 0
    static let v4MappedLowPrefix: UInt64 = 0x0000_FFFF_0000_0000

    /// Builds an address from its two 64-bit halves.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Builds an IPv4 address from its 32-bit value in host order (`0x7F000001` is 127.0.0.1).
    public init(v4 value: UInt32) {
        self.high = Self.v4MappedHigh
        self.low = Self.v4MappedLowPrefix | UInt64(value)
    }

    /// True for IPv4 (stored as IPv4-mapped IPv6).
    public var isIPv4: Bool {
        high == Self.v4MappedHigh && (low & 0xFFFF_FFFF_0000_0000) == Self.v4MappedLowPrefix
    }

    /// The IPv4 value in host order, when this is an IPv4 address.
    public var v4Value: UInt32? {
        isIPv4 ? UInt32(truncatingIfNeeded: low) : nil
    }

    /// True for 127.0.0.0/8 and ::1.
    public var isLoopback: Bool {
        if let v4 = v4Value { return (v4 >> 24) == 127 }
        return high == 0 && low == 1
    }

    /// The address with every bit past `prefix` cleared. For IPv4 the prefix counts IPv4 bits (0...32).
    public func masked(prefix: Int) -> IPAddress {
        if isIPv4 {
            let p = max(0, min(32, prefix))
            let mask: UInt32 = p == 0 ? 0 : ~UInt32(0) << (32 - p)
            return IPAddress(v4: v4Value! & mask)
        }
        let p = max(0, min(128, prefix))
        if p <= 64 {
            let mask: UInt64 = p == 0 ? 0 : ~UInt64(0) << (64 - p)
            return IPAddress(high: high & mask, low: 0)
        }
        let mask: UInt64 = ~UInt64(0) << (128 - p)
        return IPAddress(high: high, low: low & mask)
    }

    /// The block a client is counted in by default: its IPv4 /24 or IPv6 /64.
    public var defaultSubnet: IPAddress { masked(prefix: isIPv4 ? 24 : 64) }

    /// `network/prefix` text of ``defaultSubnet`` for an address that is already masked.
    public var defaultSubnetDescription: String { "\(self)/\(isIPv4 ? 24 : 64)" }

    /// Parses dotted IPv4 or textual IPv6 (with `::` compression, optional brackets and an optional
    /// trailing dotted IPv4). Returns nil for anything else; never traps on bad input.
    public init?(_ text: Substring) {
        var s = text
        if s.first == "[", s.last == "]" { s = s.dropFirst().dropLast() }
        if s.contains(":") {
            guard let v = IPAddress.parseV6(s) else { return nil }
            self = v
        } else {
            guard let v4 = IPAddress.parseV4(s) else { return nil }
            self.init(v4: v4)
        }
    }

    /// Parses an address from a string; see ``init(_:)-(Substring)``.
    public init?(_ text: String) {
        self.init(Substring(text))
    }

    static func parseV4(_ s: Substring) -> UInt32? {
        var value: UInt32 = 0
        var parts = 0
        var current: UInt32 = 0
        var digits = 0
        for byte in s.utf8 {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, parts < 3 else { return nil }
                value = (value << 8) | current
                parts += 1
                current = 0
                digits = 0
            } else if byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                // Leading zeros are refused: "010" is octal in some parsers and ambiguous.
                if digits == 1, current == 0 { return nil }
                current = current * 10 + UInt32(byte - UInt8(ascii: "0"))
                digits += 1
                guard current <= 255, digits <= 3 else { return nil }
            } else {
                return nil
            }
        }
        guard digits > 0, parts == 3 else { return nil }
        return (value << 8) | current
    }

    static func parseV6(_ s: Substring) -> IPAddress? {
        var groups: [UInt16] = []
        groups.reserveCapacity(8)
        var compressAt: Int? = nil
        var rest = s
        // A leading "::".
        if rest.hasPrefix("::") {
            compressAt = 0
            rest = rest.dropFirst(2)
        } else if rest.hasPrefix(":") {
            return nil
        }
        while !rest.isEmpty {
            let end = rest.firstIndex(of: ":") ?? rest.endIndex
            let token = rest[rest.startIndex..<end]
            if token.contains(".") {
                // Trailing embedded IPv4 must be last.
                guard end == rest.endIndex, let v4 = parseV4(token) else { return nil }
                groups.append(UInt16(v4 >> 16))
                groups.append(UInt16(v4 & 0xFFFF))
                rest = rest[end...]
                break
            }
            guard !token.isEmpty, token.count <= 4, let g = UInt16(token, radix: 16) else { return nil }
            groups.append(g)
            rest = rest[end...]
            if rest.hasPrefix("::") {
                guard compressAt == nil else { return nil }
                compressAt = groups.count
                rest = rest.dropFirst(2)
            } else if rest.hasPrefix(":") {
                rest = rest.dropFirst()
                if rest.isEmpty { return nil }
            }
        }
        if let at = compressAt {
            guard groups.count < 8 else { return nil }
            let zeros = [UInt16](repeating: 0, count: 8 - groups.count)
            groups.insert(contentsOf: zeros, at: at)
        }
        guard groups.count == 8 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for i in 0..<4 { high = (high << 16) | UInt64(groups[i]) }
        for i in 4..<8 { low = (low << 16) | UInt64(groups[i]) }
        return IPAddress(high: high, low: low)
    }

    /// Dotted IPv4, or RFC 5952 style IPv6 (lowercase, longest zero run compressed).
    public var description: String {
        if let v4 = v4Value {
            return "\(v4 >> 24).\((v4 >> 16) & 0xFF).\((v4 >> 8) & 0xFF).\(v4 & 0xFF)"
        }
        var groups = [UInt16](repeating: 0, count: 8)
        for i in 0..<4 {
            groups[i] = UInt16(truncatingIfNeeded: high >> (48 - 16 * i))
            groups[i + 4] = UInt16(truncatingIfNeeded: low >> (48 - 16 * i))
        }
        var bestStart = -1
        var bestLen = 0
        var i = 0
        while i < 8 {
            if groups[i] == 0 {
                var j = i
                while j < 8, groups[j] == 0 { j += 1 }
                if j - i > bestLen, j - i >= 2 { bestStart = i; bestLen = j - i }
                i = j
            } else {
                i += 1
            }
        }
        var out = ""
        i = 0
        while i < 8 {
            if i == bestStart {
                out += "::"
                i += bestLen
                continue
            }
            if !out.isEmpty, !out.hasSuffix(":") { out += ":" }
            out += String(groups[i], radix: 16)
            i += 1
        }
        return out
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}

/// An address block such as `10.0.0.0/8` or `2001:db8::/32`.
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    /// The first address of the block (host bits cleared).
    public let network: IPAddress
    /// Prefix length in the address's own family: 0...32 for IPv4, 0...128 for IPv6.
    public let prefix: Int

    /// Builds a block; host bits of `address` are cleared.
    public init(address: IPAddress, prefix: Int) {
        self.prefix = prefix
        self.network = address.masked(prefix: prefix)
    }

    /// Parses `a.b.c.d/n`, `v6/n`, or a bare address (a single-host block).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let addr = IPAddress(parts[0]) else { return nil }
        let maxPrefix = addr.isIPv4 ? 32 : 128
        var p = maxPrefix
        if parts.count == 2 {
            guard let n = Int(parts[1]), n >= 0, n <= maxPrefix else { return nil }
            p = n
        }
        self.init(address: addr, prefix: p)
    }

    /// True when `address` lies inside the block (and is of the same family).
    public func contains(_ address: IPAddress) -> Bool {
        guard address.isIPv4 == network.isIPv4 else { return false }
        return address.masked(prefix: prefix) == network
    }

    public var description: String { "\(network)/\(prefix)" }
}

/// A small set of CIDR blocks, checked linearly (trusted-proxy and allow lists are short).
public struct CIDRSet: Sendable, Hashable {
    /// The blocks in the set.
    public var blocks: [CIDR]

    /// Builds a set from blocks.
    public init(_ blocks: [CIDR] = []) { self.blocks = blocks }

    /// True when any block contains `address`.
    public func contains(_ address: IPAddress) -> Bool {
        for block in blocks where block.contains(address) { return true }
        return false
    }

    /// True when the set has no blocks.
    public var isEmpty: Bool { blocks.isEmpty }
}
