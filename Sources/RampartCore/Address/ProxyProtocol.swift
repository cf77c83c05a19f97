/// Parser for the HAProxy PROXY protocol, versions 1 (text) and 2 (binary).
///
/// Pure: it looks at the first bytes a connection sent and says whether a complete, valid header is
/// there, how many bytes it takes, and which client address it carries. The data plane's
/// `ProxyProtocolHandler` feeds it and closes the connection on `.invalid`.
public enum ProxyProtocol {
    /// The 12-byte signature that opens a version 2 header.
    public static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// The longest version 1 header, CRLF included (the spec's bound).
    public static let v1MaxLength = 107
    /// The largest version 2 header this parser accepts (16 fixed bytes plus TLVs).
    public static let v2MaxLength = 16 + 2048

    /// What the parser makes of the bytes seen so far.
    public enum Result: Equatable, Sendable {
        /// Not enough bytes yet to decide.
        case needMoreData
        /// A valid header of `length` bytes. `source` is nil for `UNKNOWN`/`LOCAL` (use the peer address).
        case header(length: Int, source: IPAddress?, sourcePort: UInt16?)
        /// Not a PROXY header, or a malformed one; the reason is a short stable token for counters.
        case invalid(reason: String)
    }

    /// Parses the start of a connection's byte stream.
    public static func parse(_ bytes: some Collection<UInt8>) -> Result {
        let b = Array(bytes.prefix(v2MaxLength))
        guard let first = b.first else { return .needMoreData }
        if first == UInt8(ascii: "P") { return parseV1(b) }
        if first == 0x0D { return parseV2(b) }
        return .invalid(reason: "proxy_protocol_missing")
    }

    static func parseV1(_ b: [UInt8]) -> Result {
        let prefix = Array("PROXY ".utf8)
        let n = min(b.count, prefix.count)
        guard Array(b[0..<n]) == Array(prefix[0..<n]) else { return .invalid(reason: "proxy_protocol_missing") }
        if let lf = b.firstIndex(of: 0x0A), lf < (b.firstIndex(of: 0x0D) ?? Int.max) {
            return .invalid(reason: "proxy_v1_malformed")
        }
        guard let cr = b.firstIndex(of: 0x0D) else {
            return b.count >= v1MaxLength ? .invalid(reason: "proxy_v1_too_long") : .needMoreData
        }
        guard cr + 1 < b.count else { return .needMoreData }
        guard b[cr + 1] == 0x0A, cr + 2 <= v1MaxLength else { return .invalid(reason: "proxy_v1_malformed") }
        guard let line = String(validating: b[prefix.count..<cr], as: UTF8.self) else {
            return .invalid(reason: "proxy_v1_malformed")
        }
        let fields = line.split(separator: " ", omittingEmptySubsequences: false)
        guard let proto = fields.first else { return .invalid(reason: "proxy_v1_malformed") }
        if proto == "UNKNOWN" { return .header(length: cr + 2, source: nil, sourcePort: nil) }
        guard fields.count == 5, proto == "TCP4" || proto == "TCP6" else { return .invalid(reason: "proxy_v1_malformed") }
        guard let src = IPAddress(fields[1]), IPAddress(fields[2]) != nil,
            let sport = UInt16(fields[3]), UInt16(fields[4]) != nil,
            src.isIPv4 == (proto == "TCP4")
        else { return .invalid(reason: "proxy_v1_malformed") }
        return .header(length: cr + 2, source: src, sourcePort: sport)
    }

    static func parseV2(_ b: [UInt8]) -> Result {
        let n = min(b.count, v2Signature.count)
        guard Array(b[0..<n]) == Array(v2Signature[0..<n]) else { return .invalid(reason: "proxy_protocol_missing") }
        guard b.count >= 16 else { return .needMoreData }
        let verCmd = b[12]
        guard verCmd >> 4 == 2 else { return .invalid(reason: "proxy_v2_bad_version") }
        let command = verCmd & 0x0F
        let family = b[13]
        let length = Int(b[14]) << 8 | Int(b[15])
        guard 16 + length <= v2MaxLength else { return .invalid(reason: "proxy_v2_too_long") }
        guard b.count >= 16 + length else { return .needMoreData }
        let total = 16 + length
        switch command {
        case 0x0:  // LOCAL: health check from the proxy itself; use the peer address.
            return .header(length: total, source: nil, sourcePort: nil)
        case 0x1:  // PROXY
            break
        default:
            return .invalid(reason: "proxy_v2_bad_command")
        }
        switch family >> 4 {
        case 0x1:  // AF_INET
            guard length >= 12 else { return .invalid(reason: "proxy_v2_malformed") }
            let src = UInt32(b[16]) << 24 | UInt32(b[17]) << 16 | UInt32(b[18]) << 8 | UInt32(b[19])
            let port = UInt16(b[24]) << 8 | UInt16(b[25])
            return .header(length: total, source: IPAddress(v4: src), sourcePort: port)
        case 0x2:  // AF_INET6
            guard length >= 36 else { return .invalid(reason: "proxy_v2_malformed") }
            var high: UInt64 = 0
            var low: UInt64 = 0
            for i in 0..<8 { high = high << 8 | UInt64(b[16 + i]) }
            for i in 8..<16 { low = low << 8 | UInt64(b[16 + i]) }
            let port = UInt16(b[48]) << 8 | UInt16(b[49])
            return .header(length: total, source: IPAddress(high: high, low: low), sourcePort: port)
        case 0x0, 0x3:  // AF_UNSPEC, AF_UNIX: no usable address.
            return .header(length: total, source: nil, sourcePort: nil)
        default:
            return .invalid(reason: "proxy_v2_bad_family")
        }
    }
}

/// Works out the real client address from the connection peer and `X-Forwarded-For`.
public enum ClientAddressResolver {
    /// Returns the client address: when `peer` is a trusted proxy, the right-most address in the
    /// `X-Forwarded-For` values that is not itself trusted; otherwise `peer`. Garbage entries stop the
    /// walk, so a client cannot smuggle an address past an untrusted hop.
    public static func resolve(peer: IPAddress, forwardedFor: [String], trusted: CIDRSet) -> IPAddress {
        guard !trusted.isEmpty, trusted.contains(peer), !forwardedFor.isEmpty else { return peer }
        var current = peer
        for value in forwardedFor.reversed() {
            for entry in value.split(separator: ",").reversed() {
                let trimmed = entry.trimmingASCIISpaces()
                guard let addr = IPAddress(trimmed) ?? IPAddress(stripPort(trimmed)) else { return current }
                current = addr
                if !trusted.contains(addr) { return addr }
            }
        }
        return current
    }

    static func stripPort(_ s: Substring) -> Substring {
        // "1.2.3.4:5678" or "[::1]:5678"
        if s.hasPrefix("["), let close = s.firstIndex(of: "]") { return s[s.index(after: s.startIndex)..<close] }
        if s.filter({ $0 == ":" }).count == 1, let colon = s.firstIndex(of: ":") { return s[..<colon] }
        return s
    }
}

extension Substring {
    /// The substring without leading and trailing ASCII spaces and tabs.
    public func trimmingASCIISpaces() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
