import Testing

@testable import RampartCore

@Suite struct IPAddressTests {
    @Test func parsesAndPrintsIPv4() {
        let a = IPAddress("192.168.1.20")
        #expect(a?.isIPv4 == true)
        #expect(a?.v4Value == 0xC0A8_0114)
        #expect(a?.description == "192.168.1.20")
    }

    @Test(arguments: ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.a", "1..2.3", ":::", "1:2:3:4:5:6:7:8:9", "12345::1", "[::1"])
    func refusesGarbage(_ text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func parsesAndPrintsIPv6() {
        #expect(IPAddress("::1")?.description == "::1")
        #expect(IPAddress("::1")?.isLoopback == true)
        #expect(IPAddress("2001:db8:0:0:1:0:0:1")?.description == "2001:db8::1:0:0:1")
        #expect(IPAddress("[2001:DB8::7]")?.description == "2001:db8::7")
        #expect(IPAddress("::ffff:10.1.2.3") == IPAddress("10.1.2.3"))
        #expect(IPAddress("fe80::")?.description == "fe80::")
    }

    @Test func masksBothFamilies() {
        #expect(IPAddress("10.20.30.40")!.masked(prefix: 24) == IPAddress("10.20.30.0"))
        #expect(IPAddress("10.20.30.40")!.masked(prefix: 0) == IPAddress("0.0.0.0"))
        #expect(IPAddress("2001:db8:1:2:3:4:5:6")!.masked(prefix: 64) == IPAddress("2001:db8:1:2::"))
        #expect(IPAddress("2001:db8:1:2:3:4:5:6")!.masked(prefix: 80) == IPAddress("2001:db8:1:2:3::"))
    }

    @Test func cidrContainment() {
        let block = CIDR("127.0.0.0/8")!
        #expect(block.contains(IPAddress("127.9.9.9")!))
        #expect(!block.contains(IPAddress("128.0.0.1")!))
        #expect(!block.contains(IPAddress("::1")!))
        let v6 = CIDR("2001:db8::/32")!
        #expect(v6.contains(IPAddress("2001:db8:ffff::1")!))
        #expect(!v6.contains(IPAddress("2001:db9::1")!))
        #expect(CIDR("10.0.0.0/33") == nil)
        #expect(CIDR("10.0.0.1")?.prefix == 32)
        #expect(CIDR("10.1.2.3/8")?.description == "10.0.0.0/8")
    }
}

@Suite struct ProxyProtocolTests {
    @Test func v1TCP4() {
        let bytes = Array("PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\nGET / HTTP/1.1\r\n".utf8)
        #expect(ProxyProtocol.parse(bytes) == .header(length: 43, source: IPAddress("203.0.113.7"), sourcePort: 51234))
    }

    @Test func v1Unknown() {
        #expect(ProxyProtocol.parse(Array("PROXY UNKNOWN\r\n".utf8)) == .header(length: 15, source: nil, sourcePort: nil))
    }

    @Test func v1NeedsMoreData() {
        #expect(ProxyProtocol.parse(Array("PROXY TCP4 1.2.3.4".utf8)) == .needMoreData)
        #expect(ProxyProtocol.parse(Array("PRO".utf8)) == .needMoreData)
    }

    @Test(arguments: [
        "GET / HTTP/1.1\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
        "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n",
    ])
    func v1Invalid(_ text: String) {
        if case .invalid = ProxyProtocol.parse(Array(text.utf8)) {} else { Issue.record("accepted \(text.debugDescription)") }
    }

    @Test func v1TooLongWithoutCRLF() {
        let bytes = Array(("PROXY TCP4 " + String(repeating: "1", count: 120)).utf8)
        #expect(ProxyProtocol.parse(bytes) == .invalid(reason: "proxy_v1_too_long"))
    }

    static func v2(command: UInt8, family: UInt8, payload: [UInt8]) -> [UInt8] {
        ProxyProtocol.v2Signature + [0x20 | command, family, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)] + payload
    }

    @Test func v2TCP4() {
        let payload: [UInt8] = [198, 51, 100, 9, 10, 0, 0, 1, 0xC8, 0x00, 0x01, 0xBB]
        let bytes = Self.v2(command: 1, family: 0x11, payload: payload) + Array("GET".utf8)
        #expect(ProxyProtocol.parse(bytes) == .header(length: 28, source: IPAddress("198.51.100.9"), sourcePort: 0xC800))
    }

    @Test func v2TCP6() {
        var payload = [UInt8](repeating: 0, count: 36)
        payload[0] = 0x20; payload[1] = 0x01; payload[2] = 0x0d; payload[3] = 0xb8; payload[15] = 0x05
        payload[32] = 0x00; payload[33] = 0x50
        let bytes = Self.v2(command: 1, family: 0x21, payload: payload)
        #expect(ProxyProtocol.parse(bytes) == .header(length: 52, source: IPAddress("2001:db8::5"), sourcePort: 80))
    }

    @Test func v2LocalUsesPeer() {
        #expect(ProxyProtocol.parse(Self.v2(command: 0, family: 0, payload: [])) == .header(length: 16, source: nil, sourcePort: nil))
    }

    @Test func v2Malformed() {
        #expect(ProxyProtocol.parse(Self.v2(command: 1, family: 0x11, payload: [1, 2, 3, 4])) == .invalid(reason: "proxy_v2_malformed"))
        #expect(ProxyProtocol.parse(Self.v2(command: 7, family: 0x11, payload: [])) == .invalid(reason: "proxy_v2_bad_command"))
        var wrongVersion = Self.v2(command: 1, family: 0x11, payload: [])
        wrongVersion[12] = 0x11
        #expect(ProxyProtocol.parse(wrongVersion) == .invalid(reason: "proxy_v2_bad_version"))
        #expect(ProxyProtocol.parse(Array(Self.v2(command: 1, family: 0x11, payload: []).prefix(10))) == .needMoreData)
    }
}

@Suite struct ClientAddressResolverTests {
    let trusted = CIDRSet([CIDR("10.0.0.0/8")!])

    @Test func untrustedPeerIsTheClient() {
        let ip = ClientAddressResolver.resolve(peer: IPAddress("203.0.113.1")!, forwardedFor: ["1.1.1.1"], trusted: trusted)
        #expect(ip == IPAddress("203.0.113.1"))
    }

    @Test func trustedPeerGivesRightmostUntrusted() {
        let ip = ClientAddressResolver.resolve(
            peer: IPAddress("10.0.0.5")!,
            forwardedFor: ["6.6.6.6, 198.51.100.2", "10.0.0.9"],
            trusted: trusted
        )
        #expect(ip == IPAddress("198.51.100.2"))
    }

    @Test func garbageStopsTheWalk() {
        let ip = ClientAddressResolver.resolve(peer: IPAddress("10.0.0.5")!, forwardedFor: ["6.6.6.6, nonsense"], trusted: trusted)
        #expect(ip == IPAddress("10.0.0.5"))
    }

    @Test func portsAreIgnored() {
        let ip = ClientAddressResolver.resolve(peer: IPAddress("10.0.0.5")!, forwardedFor: ["[2001:db8::1]:443"], trusted: trusted)
        #expect(ip == IPAddress("2001:db8::1"))
    }
}
