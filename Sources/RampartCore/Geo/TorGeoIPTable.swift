#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a geolocation file could not be used.
public struct GeoDataError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, naming the file.
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The IP-to-country ranges Tor ships (Debian package `tor-geoipdb`: `/usr/share/tor/geoip` for
/// IPv4, `geoip6` for IPv6), converted by Tor from the IPFire Location database (CC BY-SA 4.0).
/// Parsed once into sorted range arrays; a lookup is one binary search (about 19 steps for the
/// ~240,000 IPv4 ranges), no allocation.
///
/// Formats: IPv4 lines are `FIRST,LAST,CC` with addresses as decimal integers; IPv6 lines are
/// `FIRST,LAST,CC` with textual addresses. `#` starts a comment; `??` (unknown) ranges are skipped.
public struct TorGeoIPTable: Sendable {
    private var v4Start: [UInt32] = []
    private var v4End: [UInt32] = []
    private var v4Code: [UInt16] = []
    private var v6Start: [IPAddress] = []
    private var v6End: [IPAddress] = []
    private var v6Code: [UInt16] = []

    /// Ranges loaded (IPv4, IPv6).
    public var rangeCounts: (v4: Int, v6: Int) { (v4Start.count, v6Start.count) }

    /// An empty table (every lookup answers nil).
    public init() {}

    /// Parses the IPv4 file text `v4` and the IPv6 file text `v6` (either may be empty). `v4Name`
    /// and `v6Name` name them in errors. Throws on the first malformed line, with its number.
    public init(v4: [UInt8], v6: [UInt8], v4Name: String = "geoip", v6Name: String = "geoip6") throws(GeoDataError) {
        // Byte-level parsing without intermediate strings: the real files have ~660,000 lines.
        var failure: GeoDataError?
        v4.withUnsafeBufferPointer { bytes in
            var lineNumber = 0
            Self.lines(bytes) { start, end in
                lineNumber += 1
                guard failure == nil else { return }
                guard let (c1, c2) = Self.commas(bytes, start, end), let first = Self.decimal(bytes, start, c1),
                    let last = Self.decimal(bytes, c1 + 1, c2), first <= last
                else {
                    failure = GeoDataError("\(v4Name):\(lineNumber): expected FIRST,LAST,CC with addresses as whole numbers")
                    return
                }
                guard let code = Self.code(bytes, c2 + 1, end) else { return }
                v4Start.append(first)
                v4End.append(last)
                v4Code.append(code)
            }
        }
        if let failure { throw failure }
        v6.withUnsafeBufferPointer { bytes in
            var lineNumber = 0
            Self.lines(bytes) { start, end in
                lineNumber += 1
                guard failure == nil else { return }
                guard let (c1, c2) = Self.commas(bytes, start, end), let first = Self.ipv6(bytes, start, c1),
                    let last = Self.ipv6(bytes, c1 + 1, c2), first <= last
                else {
                    failure = GeoDataError("\(v6Name):\(lineNumber): expected FIRST,LAST,CC with IPv6 addresses")
                    return
                }
                guard let code = Self.code(bytes, c2 + 1, end) else { return }
                v6Start.append(first)
                v6End.append(last)
                v6Code.append(code)
            }
        }
        if let failure { throw failure }
        sortIfNeeded()
    }

    /// Reads and parses the files at `v4Path` and `v6Path` (a missing IPv6 file is allowed: IPv6
    /// sources then have no country).
    public static func load(v4Path: String, v6Path: String?) throws(GeoDataError) -> TorGeoIPTable {
        guard let v4 = readFile(v4Path) else { throw GeoDataError("cannot read the Tor geoip file '\(v4Path)'") }
        var v6: [UInt8] = []
        if let v6Path {
            guard let bytes = readFile(v6Path) else { throw GeoDataError("cannot read the Tor geoip6 file '\(v6Path)'") }
            v6 = bytes
        }
        let table = try TorGeoIPTable(v4: v4, v6: v6, v4Name: v4Path, v6Name: v6Path ?? "geoip6")
        if table.v4Start.isEmpty { throw GeoDataError("'\(v4Path)' holds no address ranges") }
        return table
    }

    /// The country of `address`, nil when no range holds it.
    public func country(_ address: IPAddress) -> CountryCode? {
        if let v4 = address.v4Value {
            // Last range starting at or below the address.
            var lo = 0
            var hi = v4Start.count
            while lo < hi {
                let mid = (lo + hi) >> 1
                if v4Start[mid] <= v4 { lo = mid + 1 } else { hi = mid }
            }
            guard lo > 0, v4 <= v4End[lo - 1] else { return nil }
            return CountryCode(packedValue: v4Code[lo - 1])
        }
        var lo = 0
        var hi = v6Start.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if v6Start[mid] <= address { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0, address <= v6End[lo - 1] else { return nil }
        return CountryCode(packedValue: v6Code[lo - 1])
    }

    private mutating func sortIfNeeded() {
        if !zip(v4Start, v4Start.dropFirst()).allSatisfy({ $0 <= $1 }) {
            let order = v4Start.indices.sorted { v4Start[$0] < v4Start[$1] }
            (v4Start, v4End, v4Code) = (order.map { v4Start[$0] }, order.map { v4End[$0] }, order.map { v4Code[$0] })
        }
        if !zip(v6Start, v6Start.dropFirst()).allSatisfy({ $0 <= $1 }) {
            let order = v6Start.indices.sorted { v6Start[$0] < v6Start[$1] }
            (v6Start, v6End, v6Code) = (order.map { v6Start[$0] }, order.map { v6End[$0] }, order.map { v6Code[$0] })
        }
    }

    /// Calls `body` with the bounds of each line that is not blank or a comment (without `\r\n`).
    private static func lines(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (Int, Int) -> Void) {
        var start = 0
        let n = bytes.count
        while start < n {
            var end = start
            while end < n, bytes[end] != UInt8(ascii: "\n") { end += 1 }
            var last = end
            if last > start, bytes[last - 1] == UInt8(ascii: "\r") { last -= 1 }
            if last > start, bytes[start] != UInt8(ascii: "#") { body(start, last) }
            start = end + 1
        }
    }

    /// The positions of the two commas of a `FIRST,LAST,CC` line; nil unless there are exactly two.
    private static func commas(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> (Int, Int)? {
        var found: [Int] = []
        found.reserveCapacity(2)
        var i = start
        while i < end {
            if b[i] == UInt8(ascii: ",") {
                if found.count == 2 { return nil }
                found.append(i)
            }
            i += 1
        }
        return found.count == 2 ? (found[0], found[1]) : nil
    }

    private static func decimal(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> UInt32? {
        guard end > start, end - start <= 10 else { return nil }
        var v: UInt64 = 0
        for i in start..<end {
            let c = b[i]
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            v = v * 10 + UInt64(c - UInt8(ascii: "0"))
        }
        return v <= UInt64(UInt32.max) ? UInt32(v) : nil
    }

    /// A textual IPv6 address (hex groups, at most one `::`; no embedded IPv4).
    static func ipv6(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> IPAddress? {
        guard end - start >= 2, end - start <= 39 else { return nil }
        var head: [UInt16] = []
        var tail: [UInt16] = []
        var compressed = false
        var i = start
        if b[i] == UInt8(ascii: ":") {
            guard b[i + 1] == UInt8(ascii: ":") else { return nil }
            compressed = true
            i += 2
        }
        while i < end {
            var value: UInt32 = 0
            var digits = 0
            while i < end, let h = hex(b[i]) {
                value = value << 4 | UInt32(h)
                digits += 1
                i += 1
            }
            guard digits >= 1, digits <= 4 else { return nil }
            if compressed { tail.append(UInt16(value)) } else { head.append(UInt16(value)) }
            if i == end { break }
            guard b[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            if i < end, b[i] == UInt8(ascii: ":") {
                guard !compressed else { return nil }
                compressed = true
                i += 1
            } else if i == end {
                return nil
            }
        }
        let groups = head.count + tail.count
        guard compressed ? groups <= 7 : groups == 8 else { return nil }
        let all = head + [UInt16](repeating: 0, count: 8 - groups) + tail
        var high: UInt64 = 0
        var low: UInt64 = 0
        for g in 0..<4 { high = high << 16 | UInt64(all[g]) }
        for g in 4..<8 { low = low << 16 | UInt64(all[g]) }
        return IPAddress(high: high, low: low)
    }

    @inline(__always)
    private static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// The packed code of a `CC` field; nil for `??` and anything that is not two letters.
    private static func code(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> UInt16? {
        guard end - start == 2 else { return nil }
        return CountryCode(b[start], b[start + 1])?.packed
    }

    static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n < 0 { return nil }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
            // Far above the real files (~10 MB): a wrong path to a huge file is refused, not read.
            if out.count > 256 << 20 { return nil }
        }
    }
}
