import RampartCore

/// `clearance`: clearance cookies and challenge stamps under one fixed signing key.
enum ClearanceTarget {
    /// The registry entry.
    static let target = FuzzTarget(
        name: "clearance",
        property: "arbitrary text never verifies as a clearance or a stamp; a real one verifies with its own fields, and with any single byte of its text changed, another user agent, another subnet or the other address family it does not",
        run: run
    )

    /// The fixed master secret (32 bytes) every run signs and verifies with.
    static let secret: [UInt8] = Array("rampart-fuzz-fixed-signing-key!!".utf8)
    /// The fixed time of every check (Unix seconds).
    static let now: Int64 = 1_800_000_000
    /// The client arbitrary text is verified for.
    static let fixedClient = IPAddress("203.0.113.7")!
    /// The user agent arbitrary text is verified for.
    static let fixedAgent = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"

    /// Checks one input: as presented text, then as the fields of a real clearance and stamp.
    static func run(_ bytes: [UInt8]) {
        var keys = SigningKeys(secret: secret)
        // The input as presented text: never a valid signature.
        let text = Substring(String(decoding: bytes, as: UTF8.self))
        if case .success(let clearance) = Clearance.verify(text, keys: &keys, client: fixedClient, userAgent: fixedAgent, now: now) {
            FuzzCheck.require(false, "arbitrary text \(text.debugDescription) verified as a clearance: \(clearance)")
        }
        for kind in [Stamp.Kind.pow, .wait] {
            if case .success(let stamp) = Stamp.verify(text, kind: kind, keys: &keys, client: fixedClient, now: now, maxAge: 600) {
                FuzzCheck.require(false, "arbitrary text \(text.debugDescription) verified as a stamp: \(stamp)")
            }
        }
        // The input as the fields of a real clearance and stamp, and the byte to tamper with.
        var input = InputReader(bytes)
        clearance(from: &input, keys: &keys)
        stamp(from: &input, keys: &keys)
    }

    /// A clearance made from the input verifies as itself, and no longer once tampered with.
    static func clearance(from input: inout InputReader, keys: inout SigningKeys) {
        let level = [Clearance.Level.cookie, .pow, .wait][Int(input.byte() % 3)]
        let client = input.address()
        let agent = input.text(maxLength: 40)
        // As `Clearance.issue` makes one, with the random id taken from the input (reproducible runs).
        let issued = Clearance(
            level: level, expires: now + 1 + Int64(input.u16()), id: input.u64(), v4: SubnetBinding.v4(client), v6: SubnetBinding.v6(client)
        )
        let cookie = issued.encode(keys: &keys, userAgent: agent, now: now)
        switch Clearance.verify(Substring(cookie), keys: &keys, client: client, userAgent: agent, now: now) {
        case .success(let verified):
            FuzzCheck.require(verified == issued, "clearance \(issued) came back as \(verified)")
        case .failure(let failure):
            FuzzCheck.require(false, "a fresh clearance \(issued) for \(client) did not verify: \(failure)")
        }
        let tampered = changeOneByte(of: cookie, using: &input)
        if case .success(let verified) = Clearance.verify(Substring(tampered), keys: &keys, client: client, userAgent: agent, now: now) {
            FuzzCheck.require(false, "tampered cookie \(tampered) (from \(cookie)) verified as \(verified)")
        }
        let otherAgent = agent + "x"
        FuzzCheck.require(
            Clearance.verify(Substring(cookie), keys: &keys, client: client, userAgent: otherAgent, now: now).failureValue == .forged,
            "cookie \(cookie) verified for another user agent"
        )
        let otherFamily = client.isIPv4 ? IPAddress(high: 0x2001_0db8_0000_0000, low: 1) : IPAddress(v4: 0xC000_0201)
        FuzzCheck.require(
            Clearance.verify(Substring(cookie), keys: &keys, client: otherFamily, userAgent: agent, now: now).failureValue == .wrongSubnet,
            "cookie \(cookie) issued to \(client) verified from the other address family (\(otherFamily))"
        )
        let elsewhere = otherSubnet(than: client)
        FuzzCheck.require(
            Clearance.verify(Substring(cookie), keys: &keys, client: elsewhere, userAgent: agent, now: now).failureValue == .wrongSubnet,
            "cookie \(cookie) issued to \(client) verified from \(elsewhere)"
        )
    }

    /// A stamp made from the input verifies as itself, and no longer once tampered with.
    static func stamp(from input: inout InputReader, keys: inout SigningKeys) {
        let kind: Stamp.Kind = input.byte() & 1 == 0 ? .pow : .wait
        let client = input.address()
        let issued = Stamp(kind: kind, issued: now - Int64(input.byte()), parameter: input.byte(), nonce: input.u64(), subnet: SubnetBinding.tag(client))
        let text = issued.encode(keys: &keys)
        switch Stamp.verify(Substring(text), kind: kind, keys: &keys, client: client, now: now, maxAge: 600) {
        case .success(let verified):
            FuzzCheck.require(verified == issued, "stamp \(issued) came back as \(verified)")
        case .failure(let failure):
            FuzzCheck.require(false, "a fresh stamp \(issued) for \(client) did not verify: \(failure)")
        }
        let otherKind: Stamp.Kind = kind == .pow ? .wait : .pow
        FuzzCheck.require(
            Stamp.verify(Substring(text), kind: otherKind, keys: &keys, client: client, now: now, maxAge: 600).failureValue == .forged,
            "a \(kind) stamp verified as a \(otherKind) stamp"
        )
        let tampered = changeOneByte(of: text, using: &input)
        if case .success(let verified) = Stamp.verify(Substring(tampered), kind: kind, keys: &keys, client: client, now: now, maxAge: 600) {
            FuzzCheck.require(false, "tampered stamp \(tampered) (from \(text)) verified as \(verified)")
        }
    }

    /// `text` with the byte at an input-chosen position replaced by a different input-chosen byte.
    static func changeOneByte(of text: String, using input: inout InputReader) -> String {
        var bytes = Array(text.utf8)
        let position = Int(input.u16()) % bytes.count
        bytes[position] ^= max(1, input.byte())
        return String(decoding: bytes, as: UTF8.self)
    }

    /// An address whose IPv4 /24 or IPv6 /64 differs from `client`'s.
    static func otherSubnet(than client: IPAddress) -> IPAddress {
        if let v4 = client.v4Value { return IPAddress(v4: v4 ^ 0x0000_0100) }
        return IPAddress(high: client.high ^ 1, low: client.low)
    }
}

/// Reads values from a fuzz input, front to back; past its end every value is zero, so every input
/// (the empty one too) gives a full set of fields.
struct InputReader {
    private let bytes: [UInt8]
    private var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// The next byte (0 past the end).
    mutating func byte() -> UInt8 {
        guard index < bytes.count else { return 0 }
        defer { index += 1 }
        return bytes[index]
    }

    /// The next two bytes, big-endian.
    mutating func u16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }

    /// The next eight bytes, big-endian.
    mutating func u64() -> UInt64 { (0..<8).reduce(0) { acc, _ in acc << 8 | UInt64(byte()) } }

    /// An IPv4 address (even first byte) or an IPv6 one.
    mutating func address() -> IPAddress {
        if byte() & 1 == 0 { return IPAddress(v4: UInt32(truncatingIfNeeded: u64())) }
        var high = u64()
        // Keep it out of the IPv4-mapped range so it really is an IPv6 client.
        if high == 0 { high = 0x2001_0db8_0000_0000 }
        return IPAddress(high: high, low: u64())
    }

    /// Up to `maxLength` bytes as text (its length is the next byte).
    mutating func text(maxLength: Int) -> String {
        let count = min(maxLength, Int(byte()))
        return String(decoding: (0..<count).map { _ in byte() }, as: UTF8.self)
    }
}

extension Result {
    /// The error, or nil on success.
    var failureValue: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
