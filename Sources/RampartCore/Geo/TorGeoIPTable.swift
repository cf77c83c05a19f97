#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a geolocation file could not be used.
package struct GeoDataError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, naming the file.
    package var message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}

/// The IP-to-country ranges Tor ships (Debian package `tor-geoipdb`: `/usr/share/tor/geoip` for
/// IPv4, `geoip6` for IPv6), converted by Tor from the IPFire Location database (CC BY-SA 4.0).
/// Parsed once into sorted range arrays; a lookup is one binary search (about 19 steps for the
/// ~240,000 IPv4 ranges), no allocation.
///
/// Formats: IPv4 lines are `FIRST,LAST,CC` with addresses as decimal integers; IPv6 lines are
/// `FIRST,LAST,CC` with textual addresses. `#` starts a comment; `??` (unknown) ranges are skipped.
package struct TorGeoIPTable: Sendable {
    private var v4Start: [UInt32] = []
    private var v4End: [UInt32] = []
    private var v4Code: [UInt16] = []
    private var v6Start: [IPAddress] = []
    private var v6End: [IPAddress] = []
    private var v6Code: [UInt16] = []

    /// Ranges loaded (IPv4, IPv6).
    package var rangeCounts: (v4: Int, v6: Int) { (v4Start.count, v6Start.count) }

    /// An empty table (every lookup answers nil).
    package init() {}

    /// Parses the IPv4 file text `v4` and the IPv6 file text `v6` (either may be empty). `v4Name`
    /// and `v6Name` name them in errors. Throws on the first malformed line, with its number.
    package init(v4: [UInt8], v6: [UInt8], v4Name: String = "geoip", v6Name: String = "geoip6") throws(GeoDataError) {
        var lineNumber = 0
        var failure: GeoDataError?
        Self.lines(v4) { line in
            lineNumber += 1
            guard failure == nil else { return }
            let fields = line.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
            guard fields.count == 3, let first = Self.decimal(fields[0]), let last = Self.decimal(fields[1]), first <= last else {
                failure = GeoDataError("\(v4Name):\(lineNumber): expected FIRST,LAST,CC with addresses as whole numbers")
                return
            }
            guard let code = Self.code(fields[2]) else { return }
            v4Start.append(first)
            v4End.append(last)
            v4Code.append(code)
        }
        if let failure { throw failure }
        lineNumber = 0
        Self.lines(v6) { line in
            lineNumber += 1
            guard failure == nil else { return }
            let fields = line.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
            guard fields.count == 3,
                let first = IPAddress(String(decoding: fields[0], as: UTF8.self)),
                let last = IPAddress(String(decoding: fields[1], as: UTF8.self)),
                !first.isIPv4, !last.isIPv4, first <= last
            else {
                failure = GeoDataError("\(v6Name):\(lineNumber): expected FIRST,LAST,CC with IPv6 addresses")
                return
            }
            guard let code = Self.code(fields[2]) else { return }
            v6Start.append(first)
            v6End.append(last)
            v6Code.append(code)
        }
        if let failure { throw failure }
        sortIfNeeded()
    }

    /// Reads and parses the files at `v4Path` and `v6Path` (a missing IPv6 file is allowed: IPv6
    /// sources then have no country).
    package static func load(v4Path: String, v6Path: String?) throws(GeoDataError) -> TorGeoIPTable {
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
    package func country(_ address: IPAddress) -> CountryCode? {
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

    /// Calls `body` with each line that is not blank or a comment, without the line break.
    private static func lines(_ bytes: [UInt8], _ body: (ArraySlice<UInt8>) -> Void) {
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: "\n") { end += 1 }
            var line = bytes[start..<end]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            if let first = line.first, first != UInt8(ascii: "#") { body(line) }
            start = end + 1
        }
    }

    private static func decimal(_ s: ArraySlice<UInt8>) -> UInt32? {
        guard !s.isEmpty, s.count <= 10 else { return nil }
        var v: UInt64 = 0
        for c in s {
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            v = v * 10 + UInt64(c - UInt8(ascii: "0"))
        }
        return v <= UInt64(UInt32.max) ? UInt32(v) : nil
    }

    /// The packed code of a `CC` field; nil for `??` and anything that is not two letters.
    private static func code(_ s: ArraySlice<UInt8>) -> UInt16? {
        guard s.count == 2 else { return nil }
        return CountryCode(s[s.startIndex], s[s.startIndex + 1])?.packed
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
