import Crypto

/// The parts of a TLS ClientHello that fingerprints are made of, read from the first bytes a client
/// sends (before any cryptography). Record framing is followed across records, so a hello split
/// over several records (large post-quantum key shares) is read whole; the size is capped.
public struct ClientHello: Sendable, Equatable {
    /// `legacy_version` of the handshake message.
    public var legacyVersion: UInt16 = 0
    /// Cipher suites, in the client's order (GREASE included as sent).
    public var cipherSuites: [UInt16] = []
    /// Extension types, in the client's order (GREASE included as sent).
    public var extensions: [UInt16] = []
    /// The server name (SNI), if sent.
    public var serverName: String? = nil
    /// ALPN protocol names, in the client's order.
    public var alpn: [String] = []
    /// `supported_versions` values, in the client's order.
    public var supportedVersions: [UInt16] = []
    /// `signature_algorithms` values, in the client's order.
    public var signatureAlgorithms: [UInt16] = []

    public init() {}

    /// The largest hello read; anything bigger is malformed for our purposes. Browsers' hellos,
    /// post-quantum key shares included, stay under 3 KiB; the cap bounds what a connection that
    /// trickles a hello can make us hold (with 10,000 connections, 80 MiB at worst, for at most the
    /// header timeout).
    public static let maximumBytes = 8 * 1024

    /// What the first bytes of a connection say.
    public enum ParseResult: Sendable, Equatable {
        /// The hello is not complete yet.
        case needMoreData
        /// Not a TLS handshake at all (plain HTTP on a TLS port, garbage).
        case notTLS
        /// A TLS record that does not hold a well-formed ClientHello, or one over the size cap.
        case malformed(String)
        /// The hello.
        case hello(ClientHello)
    }

    /// Parses a ClientHello from the start of a connection's bytes.
    public static func parse<Bytes: Collection>(_ bytes: Bytes) -> ParseResult where Bytes.Element == UInt8 {
        let data = Array(bytes.prefix(maximumBytes + 5 * 4))
        guard let first = data.first else { return .needMoreData }
        guard first == 0x16 else { return .notTLS }
        // Gather handshake bytes over as many records as the hello needs.
        var handshake: [UInt8] = []
        var offset = 0
        var needed: Int? = nil
        while needed == nil || handshake.count < needed! {
            guard data.count >= offset + 5 else { return data.count >= maximumBytes ? .malformed("hello too large") : .needMoreData }
            guard data[offset] == 0x16 else { return .malformed("record type \(data[offset]) inside the hello") }
            guard data[offset + 1] == 0x03 else { return .notTLS }
            let length = Int(data[offset + 3]) << 8 | Int(data[offset + 4])
            guard length > 0, length <= 16_384 else { return .malformed("record length \(length)") }
            // The handshake header, checked as soon as it is in: a bogus size is refused at once.
            if offset == 0, length >= 4, data.count >= 9 {
                guard data[5] == 0x01 else { return .malformed("handshake type \(data[5]), not ClientHello") }
                let n = Int(data[6]) << 16 | Int(data[7]) << 8 | Int(data[8])
                guard n <= maximumBytes else { return .malformed("hello too large") }
            }
            guard data.count >= offset + 5 + length else {
                return offset + 5 + length > maximumBytes + 5 * 4 ? .malformed("hello too large") : .needMoreData
            }
            handshake.append(contentsOf: data[(offset + 5)..<(offset + 5 + length)])
            offset += 5 + length
            if needed == nil, handshake.count >= 4 {
                guard handshake[0] == 0x01 else { return .malformed("handshake type \(handshake[0]), not ClientHello") }
                let n = Int(handshake[1]) << 16 | Int(handshake[2]) << 8 | Int(handshake[3])
                guard n <= maximumBytes else { return .malformed("hello too large") }
                needed = n + 4
            }
        }
        var reader = Reader(bytes: handshake, index: 4, end: needed!)
        return reader.hello().map { .hello($0) } ?? .malformed("truncated ClientHello")
    }

    /// GREASE values (RFC 8701): 0x0a0a, 0x1a1a, … 0xfafa. Fingerprints ignore them.
    public static func isGREASE(_ v: UInt16) -> Bool {
        (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff)
    }

    private struct Reader {
        let bytes: [UInt8]
        var index: Int
        let end: Int

        mutating func u8() -> Int? {
            guard index < end else { return nil }
            defer { index += 1 }
            return Int(bytes[index])
        }

        mutating func u16() -> UInt16? {
            guard index + 2 <= end else { return nil }
            defer { index += 2 }
            return UInt16(bytes[index]) << 8 | UInt16(bytes[index + 1])
        }

        mutating func skip(_ n: Int) -> Bool {
            guard n >= 0, index + n <= end else { return false }
            index += n
            return true
        }

        /// A sub-reader over the next `n` bytes, which are consumed.
        mutating func slice(_ n: Int) -> Reader? {
            guard n >= 0, index + n <= end else { return nil }
            defer { index += n }
            return Reader(bytes: bytes, index: index, end: index + n)
        }

        mutating func u16List(lengthBytes: Int) -> [UInt16]? {
            let n: Int?
            if lengthBytes == 1 { n = u8() } else { n = u16().map(Int.init) }
            guard let n, n % 2 == 0, var list = slice(n) else { return nil }
            var out: [UInt16] = []
            out.reserveCapacity(n / 2)
            while let v = list.u16() { out.append(v) }
            return out
        }

        mutating func hello() -> ClientHello? {
            var h = ClientHello()
            guard let version = u16() else { return nil }
            h.legacyVersion = version
            guard skip(32), let sessionLength = u8(), skip(sessionLength) else { return nil }
            guard let ciphers = u16List(lengthBytes: 2) else { return nil }
            h.cipherSuites = ciphers
            guard let compression = u8(), skip(compression) else { return nil }
            // No extensions at all is legal (old clients).
            guard index < end else { return h }
            guard let total = u16(), var exts = slice(Int(total)) else { return nil }
            while exts.index < exts.end {
                guard let type = exts.u16(), let length = exts.u16(), var body = exts.slice(Int(length)) else { return nil }
                h.extensions.append(type)
                switch type {
                case 0x0000:  // server_name
                    guard let listLength = body.u16(), var list = body.slice(Int(listLength)) else { return nil }
                    while list.index < list.end {
                        guard let kind = list.u8(), let n = list.u16(), list.index + Int(n) <= list.end else { return nil }
                        if kind == 0, h.serverName == nil {
                            h.serverName = String(decoding: list.bytes[list.index..<(list.index + Int(n))], as: UTF8.self)
                        }
                        _ = list.skip(Int(n))
                    }
                case 0x0010:  // application_layer_protocol_negotiation
                    guard let listLength = body.u16(), var list = body.slice(Int(listLength)) else { return nil }
                    while list.index < list.end {
                        guard let n = list.u8(), list.index + n <= list.end else { return nil }
                        h.alpn.append(String(decoding: list.bytes[list.index..<(list.index + n)], as: UTF8.self))
                        _ = list.skip(n)
                    }
                case 0x002b:  // supported_versions
                    guard let versions = body.u16List(lengthBytes: 1) else { return nil }
                    h.supportedVersions = versions
                case 0x000d:  // signature_algorithms
                    guard let algorithms = body.u16List(lengthBytes: 2) else { return nil }
                    h.signatureAlgorithms = algorithms
                default:
                    break
                }
            }
            return h
        }
    }
}

/// JA4 TLS client fingerprints (FoxIO, BSD-3): `t13d1516h2_8daaf6152771_d8a2da3f94cd` =
/// transport, TLS version, SNI or not, cipher and extension counts, ALPN's first and last
/// character; then a hash of the sorted cipher suites; then a hash of the sorted extensions
/// (without SNI and ALPN) and the signature algorithms in order. GREASE values are ignored.
/// Clients built on one TLS stack share a fingerprint whatever address or user agent they use.
public enum JA4 {
    /// The fingerprint of a hello received over TCP.
    public static func fingerprint(_ hello: ClientHello) -> String {
        let ciphers = hello.cipherSuites.filter { !ClientHello.isGREASE($0) }
        let extensions = hello.extensions.filter { !ClientHello.isGREASE($0) }
        let versions = hello.supportedVersions.filter { !ClientHello.isGREASE($0) }
        let version = versions.max() ?? hello.legacyVersion
        var a = "t" + versionCode(version) + (hello.serverName == nil ? "i" : "d")
        a += twoDigits(ciphers.count) + twoDigits(extensions.count) + alpnCode(hello.alpn.first)

        let b = ciphers.isEmpty ? "000000000000" : hash12(ciphers.sorted().map(hex4).joined(separator: ","))
        let sortedExtensions = extensions.filter { $0 != 0x0000 && $0 != 0x0010 }.sorted().map(hex4).joined(separator: ",")
        let algorithms = hello.signatureAlgorithms.filter { !ClientHello.isGREASE($0) }.map(hex4).joined(separator: ",")
        let cInput = algorithms.isEmpty ? sortedExtensions : sortedExtensions + "_" + algorithms
        let c = sortedExtensions.isEmpty && algorithms.isEmpty ? "000000000000" : hash12(cInput)
        return a + "_" + b + "_" + c
    }

    static func versionCode(_ v: UInt16) -> String {
        switch v {
        case 0x0304: return "13"
        case 0x0303: return "12"
        case 0x0302: return "11"
        case 0x0301: return "10"
        case 0x0300: return "s3"
        case 0x0002: return "s2"
        case 0xfeff: return "d1"
        case 0xfefd: return "d2"
        case 0xfefc: return "d3"
        default: return "00"
        }
    }

    static func twoDigits(_ n: Int) -> String {
        let v = min(99, n)
        return v < 10 ? "0\(v)" : "\(v)"
    }

    static func alpnCode(_ alpn: String?) -> String {
        guard let value = alpn, let first = value.utf8.first, let last = value.utf8.last else { return "00" }
        func alphanumeric(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) }
        if alphanumeric(first), alphanumeric(last) {
            return String(decoding: [first, last], as: UTF8.self)
        }
        // Non-alphanumeric ALPN values: first hex digit of the first byte, last of the last byte.
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: [digits[Int(first >> 4)], digits[Int(last & 0x0f)]], as: UTF8.self)
    }

    static func hex4(_ v: UInt16) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: [digits[Int(v >> 12)], digits[Int(v >> 8 & 0xf)], digits[Int(v >> 4 & 0xf)], digits[Int(v & 0xf)]], as: UTF8.self)
    }

    static func hash12(_ s: String) -> String {
        let digest = SHA256.hash(data: Array(s.utf8))
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in digest.prefix(6) {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Fingerprint patterns from the config: an exact JA4, or a prefix ending in `*`
/// (`t13d1516h2_*` matches every hello with that first part).
public struct FingerprintPattern: Sendable, Hashable, CustomStringConvertible {
    public let text: String

    public init?(_ text: String) {
        let t = text.trimmingCharacters()
        guard !t.isEmpty, t.count <= 64, t.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { return nil }
        if let star = t.firstIndex(of: "*"), star != t.index(before: t.endIndex) { return nil }
        self.text = t
    }

    public func matches(_ fingerprint: String) -> Bool {
        if text.hasSuffix("*") { return fingerprint.hasPrefix(text.dropLast()) }
        return fingerprint == text
    }

    public var description: String { text }
}

/// What a site does with clients by TLS fingerprint (`fingerprints:` in a site).
public struct FingerprintRules: Sendable, Hashable {
    /// Refused with 403 before any other request guard.
    public var deny: [FingerprintPattern] = []
    /// Challenged whatever the site's mode (proof of work; the no-JS path still works).
    public var challenge: [FingerprintPattern] = []

    public init() {}

    public var isEmpty: Bool { deny.isEmpty && challenge.isEmpty }

    public enum Verdict: Sendable, Equatable { case none, deny, challenge }

    public func verdict(_ fingerprint: String?) -> Verdict {
        guard let fingerprint, !isEmpty else { return .none }
        if deny.contains(where: { $0.matches(fingerprint) }) { return .deny }
        if challenge.contains(where: { $0.matches(fingerprint) }) { return .challenge }
        return .none
    }
}
