import Testing

@testable import RampartCore

/// Builds ClientHello records the way a TLS client writes them.
struct HelloBuilder {
    var legacyVersion: UInt16 = 0x0303
    var ciphers: [UInt16] = []
    /// Extension types in order; SNI, ALPN, supported_versions and signature_algorithms get bodies
    /// from the fields below, others are empty.
    var extensions: [UInt16] = []
    var serverName = "www.example.lt"
    var alpn = ["h2", "http/1.1"]
    var versions: [UInt16] = [0x0304, 0x0303]
    var algorithms: [UInt16] = []

    static func u16(_ v: Int) -> [UInt8] { [UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }

    func body(_ type: UInt16) -> [UInt8] {
        switch type {
        case 0x0000:
            let name = Array(serverName.utf8)
            let entry = [UInt8(0)] + Self.u16(name.count) + name
            return Self.u16(entry.count) + entry
        case 0x0010:
            let list = alpn.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
            return Self.u16(list.count) + list
        case 0x002b:
            let list = versions.flatMap { Self.u16(Int($0)) }
            return [UInt8(list.count)] + list
        case 0x000d:
            let list = algorithms.flatMap { Self.u16(Int($0)) }
            return Self.u16(list.count) + list
        default:
            return []
        }
    }

    /// The hello as TLS records of at most `recordSize` bytes of payload each.
    func records(recordSize: Int = 16_384) -> [UInt8] {
        var hello = Self.u16(Int(legacyVersion)) + [UInt8](repeating: 7, count: 32) + [32] + [UInt8](repeating: 9, count: 32)
        let suites = ciphers.flatMap { Self.u16(Int($0)) }
        hello += Self.u16(suites.count) + suites + [1, 0]
        var exts: [UInt8] = []
        for t in extensions {
            let b = body(t)
            exts += Self.u16(Int(t)) + Self.u16(b.count) + b
        }
        hello += Self.u16(exts.count) + exts
        let handshake = [UInt8(1), UInt8(hello.count >> 16), UInt8(hello.count >> 8 & 0xff), UInt8(hello.count & 0xff)] + hello
        var out: [UInt8] = []
        var i = 0
        while i < handshake.count {
            let chunk = handshake[i..<min(handshake.count, i + recordSize)]
            out += [0x16, 0x03, 0x01] + Self.u16(chunk.count) + chunk
            i += recordSize
        }
        return out
    }

    /// A Chrome hello, from a published JA4 capture (ja4_ro: original order), with GREASE added.
    static var chrome: HelloBuilder {
        var b = HelloBuilder()
        b.ciphers = [0x3a3a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035]
        b.extensions = [0x1a1a, 0x002d, 0x0033, 0x0010, 0xfe0d, 0x0017, 0x44cd, 0x0000, 0x000b, 0x000a, 0x002b, 0xff01, 0x0023, 0x0012, 0x0005, 0x000d, 0x001b, 0x2a2a]
        b.versions = [0x5a5a, 0x0304, 0x0303]
        b.algorithms = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
        return b
    }
}

@Suite struct FingerprintTests {
    @Test func chromeHelloGivesThePublishedJA4() throws {
        let bytes = HelloBuilder.chrome.records()
        guard case .hello(let hello) = ClientHello.parse(bytes) else {
            Issue.record("not parsed: \(ClientHello.parse(bytes))")
            return
        }
        #expect(hello.serverName == "www.example.lt")
        #expect(hello.alpn == ["h2", "http/1.1"])
        #expect(JA4.fingerprint(hello) == "t13d1516h2_8daaf6152771_d8a2da3f94cd")
    }

    @Test func helloSplitOverRecordsAndArrivingInPieces() {
        var b = HelloBuilder.chrome
        b.serverName = String(repeating: "a", count: 200) + ".lt"
        let bytes = b.records(recordSize: 100)
        for cut in [0, 1, 4, 5, 50, 104, 105, bytes.count - 1] {
            #expect(ClientHello.parse(bytes.prefix(cut)) == .needMoreData, "cut at \(cut)")
        }
        guard case .hello(let hello) = ClientHello.parse(bytes) else {
            Issue.record("not parsed")
            return
        }
        #expect(hello.serverName?.count == 203)
        #expect(JA4.fingerprint(hello).hasPrefix("t13d1516h2_8daaf6152771_"))
    }

    @Test func variantsChangeTheRightParts() {
        var b = HelloBuilder.chrome
        b.extensions.removeAll { $0 == 0x0000 }  // no SNI
        b.alpn = ["http/1.1"]
        guard case .hello(let h) = ClientHello.parse(b.records()) else {
            Issue.record("not parsed")
            return
        }
        let ja4 = JA4.fingerprint(h)
        #expect(ja4.hasPrefix("t13i1515h1_8daaf6152771_"))
        // SNI and ALPN are left out of the extension hash: same third part.
        #expect(ja4.hasSuffix("_d8a2da3f94cd"))

        var old = HelloBuilder()
        old.ciphers = [0x002f]
        old.extensions = [0x0000]
        guard case .hello(let o) = ClientHello.parse(old.records()) else {
            Issue.record("not parsed")
            return
        }
        #expect(JA4.fingerprint(o) == "t12d010100_" + JA4.hash12("002f") + "_000000000000")
    }

    @Test func notTLSAndMalformedInput() {
        #expect(ClientHello.parse(Array("GET / HTTP/1.1\r\n".utf8)) == .notTLS)
        #expect(ClientHello.parse([0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00]) == .malformed("handshake type 2, not ClientHello"))
        // A hello whose length runs past its extensions.
        var bytes = HelloBuilder.chrome.records()
        bytes[bytes.count - 2] = 0xff
        if case .hello = ClientHello.parse(bytes) { Issue.record("a broken extension list was accepted") }
        // A hello that claims to be enormous is refused, not buffered for ever.
        #expect(ClientHello.parse([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0xff, 0xff, 0xff]) == .malformed("hello too large"))
        // Random bytes never crash the parser.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var junk = HelloBuilder.chrome.records()
            for _ in 0..<4 { junk[Int.random(in: 5..<junk.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            _ = ClientHello.parse(junk.prefix(Int.random(in: 0...junk.count, using: &rng)))
        }
    }

    @Test func patternsAndRules() {
        #expect(FingerprintPattern("t13d1516h2_*")!.matches("t13d1516h2_8daaf6152771_d8a2da3f94cd"))
        #expect(!FingerprintPattern("t13d1516h2_*")!.matches("t13d1517h2_8daaf6152771_d8a2da3f94cd"))
        #expect(FingerprintPattern("t1*3") == nil)
        #expect(FingerprintPattern("") == nil)
        var rules = FingerprintRules()
        rules.deny = [FingerprintPattern("t12d010100_*")!]
        rules.challenge = [FingerprintPattern("t13d1516h2_8daaf6152771_d8a2da3f94cd")!]
        #expect(rules.verdict("t12d010100_x") == .deny)
        #expect(rules.verdict("t13d1516h2_8daaf6152771_d8a2da3f94cd") == .challenge)
        #expect(rules.verdict("t13d1516h2_8daaf6152771_000000000000") == .none)
        #expect(rules.verdict(nil) == .none)
    }

    @Test func ja4RateLimitSharesOneBucketAcrossAddresses() {
        var rule = RateLimitRule(name: "per-stack", ratePerSecond: 1, burst: 3)
        rule.key = .ja4
        var limiter = SiteRateLimiter(rules: [rule], loops: 1)
        let stack = "t13d1516h2_8daaf6152771_d8a2da3f94cd"
        for i in 0..<3 {
            #expect(limiter.check(client: IPAddress(v4: 0x7F00_0100 + UInt32(i)), method: .GET, target: "/", fingerprint: stack, now: 0) == .allowed(shadowHits: []))
        }
        if case .allowed = limiter.check(client: IPAddress(v4: 0x7F00_0200), method: .GET, target: "/", fingerprint: stack, now: 0) {
            Issue.record("a fourth address with the same fingerprint was not limited")
        }
        // Another stack, and plain HTTP (no fingerprint), are not affected.
        #expect(limiter.check(client: IPAddress(v4: 0x7F00_0300), method: .GET, target: "/", fingerprint: "t12d010100_x_y", now: 0) == .allowed(shadowHits: []))
        #expect(limiter.check(client: IPAddress(v4: 0x7F00_0300), method: .GET, target: "/", now: 0) == .allowed(shadowHits: []))
    }
}
