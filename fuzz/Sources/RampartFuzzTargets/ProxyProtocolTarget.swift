import RampartCore

/// `proxy-protocol`: the first bytes of a connection through the PROXY v1/v2 parser.
enum ProxyProtocolTarget {
    /// The registry entry.
    static let target = FuzzTarget(
        name: "proxy-protocol",
        property: "an accepted header is complete, no longer than the input or the spec's bound, parses the same alone, and its address round-trips through text, v1 and v2",
        run: run
    )

    /// Checks one input: the first bytes of a connection on a PROXY protocol listener.
    static func run(_ bytes: [UInt8]) {
        let result = ProxyProtocol.parse(bytes)
        switch result {
        case .needMoreData:
            // Buffering is bounded: past the longest header the parser must decide.
            FuzzCheck.require(bytes.count < ProxyProtocol.v2MaxLength, "asked for more data after \(bytes.count) bytes")
        case .invalid(let reason):
            FuzzCheck.require(!reason.isEmpty, "invalid without a reason")
        case .header(let length, let source, let port):
            FuzzCheck.require(length > 0 && length <= bytes.count, "header length \(length) for \(bytes.count) input bytes")
            let bound = bytes[0] == UInt8(ascii: "P") ? ProxyProtocol.v1MaxLength : ProxyProtocol.v2MaxLength
            FuzzCheck.require(length <= bound, "header length \(length) over the spec's bound \(bound)")
            FuzzCheck.require((source == nil) == (port == nil), "source \(String(describing: source)) without port or the reverse")
            // The header alone says the same; one byte short, it is incomplete (never a shorter header).
            FuzzCheck.require(ProxyProtocol.parse(bytes[0..<length]) == result, "the header alone parses differently")
            FuzzCheck.require(ProxyProtocol.parse(bytes[0..<(length - 1)]) == .needMoreData, "a header one byte short is not incomplete")
            if let source, let port { roundTrip(source, port: port) }
        }
    }

    /// The address survives its text form and both header versions.
    static func roundTrip(_ source: IPAddress, port: UInt16) {
        FuzzCheck.require(IPAddress(source.description) == source, "\(source) does not parse back from its text")
        let v1 = Array("PROXY \(source.isIPv4 ? "TCP4" : "TCP6") \(source) \(source) \(port) 443\r\n".utf8)
        FuzzCheck.require(
            ProxyProtocol.parse(v1) == .header(length: v1.count, source: source, sourcePort: port),
            "\(source):\(port) does not round-trip through v1: \(ProxyProtocol.parse(v1))"
        )
        var v2 = ProxyProtocol.v2Signature + [0x21]
        if let v4 = source.v4Value {
            v2 += [0x11, 0, 12]
            for _ in 0..<2 { v2 += [UInt8(v4 >> 24), UInt8(v4 >> 16 & 0xFF), UInt8(v4 >> 8 & 0xFF), UInt8(v4 & 0xFF)] }
        } else {
            v2 += [0x21, 0, 36]
            for _ in 0..<2 {
                for shift in stride(from: 56, through: 0, by: -8) { v2.append(UInt8(source.high >> UInt64(shift) & 0xFF)) }
                for shift in stride(from: 56, through: 0, by: -8) { v2.append(UInt8(source.low >> UInt64(shift) & 0xFF)) }
            }
        }
        v2 += [UInt8(port >> 8), UInt8(port & 0xFF), 0x01, 0xBB]
        FuzzCheck.require(
            ProxyProtocol.parse(v2) == .header(length: v2.count, source: source, sourcePort: port),
            "\(source):\(port) does not round-trip through v2: \(ProxyProtocol.parse(v2))"
        )
    }
}
