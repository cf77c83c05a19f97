import RampartCore

/// `client-hello`: the first bytes of a TLS connection through the ClientHello reader and JA4.
enum ClientHelloTarget {
    /// The registry entry.
    static let target = FuzzTarget(
        name: "client-hello",
        property: "the reader decides within its size cap, a hello's lists fit in the bytes read, more bytes after a complete hello change nothing, and a JA4 has the JA4 shape and works as a config pattern",
        run: run
    )

    /// The most bytes the reader may hold before it must decide (the cap plus four record headers).
    static let decisionBound = ClientHello.maximumBytes + 5 * 4

    /// Checks one input: the first bytes of a TLS connection.
    static func run(_ bytes: [UInt8]) {
        let result = ClientHello.parse(bytes)
        switch result {
        case .needMoreData:
            FuzzCheck.require(bytes.count < decisionBound, "asked for more data after \(bytes.count) bytes")
        case .notTLS, .malformed:
            break
        case .hello(let hello):
            // What the hello holds came from the bytes: its lists cannot outgrow them (ALPN names
            // are counted by their length bytes: invalid UTF-8 grows when decoded).
            let held = hello.cipherSuites.count * 2 + hello.extensions.count * 4 + hello.supportedVersions.count * 2
                + hello.signatureAlgorithms.count * 2 + hello.alpn.count
            FuzzCheck.require(held <= min(bytes.count, decisionBound), "a hello of \(held) bytes of lists from \(bytes.count) input bytes")
            // A complete hello does not depend on what follows it.
            FuzzCheck.require(ClientHello.parse(bytes + [0x16, 0x03, 0x01, 0x00, 0x01, 0x00]) == result, "bytes after a complete hello changed it")
            let ja4 = JA4.fingerprint(hello)
            FuzzCheck.require(hasJA4Shape(ja4), "JA4 \(ja4.debugDescription) does not have the JA4 shape")
            FuzzCheck.require(JA4.fingerprint(hello) == ja4, "JA4 is not deterministic")
            guard let pattern = FingerprintPattern(ja4) else {
                FuzzCheck.require(false, "JA4 \(ja4) is not accepted as a config pattern")
                return
            }
            FuzzCheck.require(pattern.matches(ja4), "JA4 \(ja4) does not match itself as a pattern")
            let prefix = String(ja4.prefix(11)) + "*"
            FuzzCheck.require(FingerprintPattern(prefix)?.matches(ja4) == true, "JA4 \(ja4) does not match its prefix pattern \(prefix)")
        }
    }

    /// `t13d1516h2_8daaf6152771_d8a2da3f94cd`: `t`, a version code, `d` or `i`, two two-digit
    /// counts, two ALPN characters (alphanumeric), then two 12-digit lowercase hex hashes.
    static func hasJA4Shape(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard b.count == 36, b[0] == UInt8(ascii: "t"), b[10] == UInt8(ascii: "_"), b[23] == UInt8(ascii: "_") else { return false }
        let versions = ["13", "12", "11", "10", "s3", "s2", "d1", "d2", "d3", "00"]
        guard versions.contains(String(decoding: b[1..<3], as: UTF8.self)) else { return false }
        guard b[3] == UInt8(ascii: "d") || b[3] == UInt8(ascii: "i") else { return false }
        func digit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }
        func alphanumeric(_ c: UInt8) -> Bool {
            digit(c) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
        }
        func hex(_ c: UInt8) -> Bool { digit(c) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f")) }
        return b[4..<8].allSatisfy(digit) && b[8..<10].allSatisfy(alphanumeric) && b[11..<23].allSatisfy(hex) && b[24..<36].allSatisfy(hex)
    }
}
