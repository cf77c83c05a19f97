import Crypto

/// Signing keys for clearance cookies, challenges and tickets. Each key is derived from one master
/// secret (kept in the state folder, shared by every node that shares it) and a key epoch; epochs
/// turn over every `rotation` seconds and the previous epoch's key is still accepted, so keys
/// rotate with an overlap window and a leaked derived key expires by itself.
public struct SigningKeys: Sendable {
    private let master: SymmetricKey
    /// Seconds one key signs new tokens.
    public let rotation: Int64
    private var cached: [(epoch: UInt32, key: SymmetricKey)] = []

    /// Keys from a master secret (at least 16 bytes).
    public init(secret: [UInt8], rotation: Int64 = 6 * 3600) {
        precondition(secret.count >= 16, "the signing secret must have at least 16 bytes")
        self.master = SymmetricKey(data: secret)
        self.rotation = max(60, rotation)
    }

    /// The epoch that signs at `now` (Unix seconds).
    public func epoch(at now: Int64) -> UInt32 { UInt32(truncatingIfNeeded: max(0, now) / rotation) }

    /// The key of `epoch`; derived once and kept (the current and previous epochs).
    public mutating func key(epoch: UInt32) -> SymmetricKey {
        if let hit = cached.first(where: { $0.epoch == epoch }) { return hit.key }
        var label = Array("rampart-signing-v1/".utf8)
        withUnsafeBytes(of: epoch.bigEndian) { label.append(contentsOf: $0) }
        let key = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: label, using: master)))
        cached.append((epoch, key))
        if cached.count > 3 { cached.removeFirst() }
        return key
    }

    /// True when tokens of `epoch` are accepted at `now` (current or previous epoch).
    public func accepts(epoch: UInt32, at now: Int64) -> Bool {
        let current = self.epoch(at: now)
        return epoch == current || epoch &+ 1 == current
    }

    /// A 16-byte tag over `message` and `extra` with the key of `epoch`.
    mutating func tag(_ message: [UInt8], extra: Substring.UTF8View? = nil, epoch: UInt32) -> [UInt8] {
        var mac = HMAC<SHA256>(key: key(epoch: epoch))
        mac.update(data: message)
        if let extra { mac.update(data: Array(extra)) }
        return Array(Array(mac.finalize()).prefix(16))
    }
}

/// Constant-time comparison of two byte arrays.
func constantTimeEqual(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
    guard a.count == b.count else { return false }
    var diff: UInt8 = 0
    for (x, y) in zip(a, b) { diff |= x ^ y }
    return diff == 0
}

/// The subnet a clearance is bound to: IPv4 /24 or IPv6 /64 (the same blocks rate limits use).
public enum SubnetBinding {
    /// The /24 of an IPv4 client.
    public static func v4(_ ip: IPAddress) -> UInt32? { ip.v4Value.map { $0 & 0xFFFF_FF00 } }
    /// The /64 of an IPv6 client.
    public static func v6(_ ip: IPAddress) -> UInt64? { ip.isIPv4 ? nil : ip.high }
    /// One 64-bit tag for either family.
    public static func tag(_ ip: IPAddress) -> UInt64 {
        if let v4 = v4(ip) { return UInt64(v4) | 0x4 << 60 }
        return ip.high
    }
}

/// A clearance: proof that a client passed a challenge, carried in a signed cookie.
///
/// It is bound to the subnet it was earned from (IPv4 /24 or IPv6 /64) and is good from that
/// subnet only: a dual-stack client that switches family meets one more challenge (an empty
/// family slot filled on first use would let one clearance travel to any network), to its user
/// agent (through the signature) and to an expiry; its random id is what per-clearance rate limits
/// and revocation key on.
public struct Clearance: Sendable, Equatable {
    /// Which challenge was passed.
    public enum Level: UInt8, Sendable, Comparable {
        /// The cookie check (or a cookie handed out in elevated mode): the client keeps cookies.
        case cookie = 1
        /// A proof-of-work puzzle.
        case pow = 2
        /// The no-JavaScript wait.
        case wait = 3

        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }

        /// True when this level satisfies `tier`.
        public func satisfies(_ tier: ChallengeTier) -> Bool {
            tier == .cookie || self >= .pow
        }
    }

    public var level: Level
    /// Unix seconds after which it is refused.
    public var expires: Int64
    /// Random id (rate limits, revocation).
    public var id: UInt64
    public var v4: UInt32?
    public var v6: UInt64?

    public init(level: Level, expires: Int64, id: UInt64, v4: UInt32?, v6: UInt64?) {
        self.level = level
        self.expires = expires
        self.id = id
        self.v4 = v4
        self.v6 = v6
    }

    /// A new clearance for `client`.
    public static func issue(level: Level, client: IPAddress, now: Int64, ttl: Int64) -> Clearance {
        Clearance(
            level: level, expires: now + ttl, id: UInt64.random(in: 1...UInt64.max),
            v4: SubnetBinding.v4(client), v6: SubnetBinding.v6(client)
        )
    }

    /// Bucket key for per-clearance rate limits and revocation.
    public var key: IPAddress { IPAddress(high: 0xC1EA_4A4C_E000_0000, low: id) }

    static let bodyLength = 31

    /// The cookie value: base64url of the fields and a 16-byte HMAC over them and the user agent.
    public func encode(keys: inout SigningKeys, userAgent: String, now: Int64) -> String {
        let epoch = keys.epoch(at: now)
        var b: [UInt8] = [1]
        b.appendBigEndian(epoch)
        b.append(level.rawValue)
        b.appendBigEndian(UInt32(truncatingIfNeeded: expires))
        b.appendBigEndian(id)
        b.append((v4 != nil ? 1 : 0) | (v6 != nil ? 2 : 0))
        b.appendBigEndian(v4 ?? 0)
        b.appendBigEndian(v6 ?? 0)
        b += keys.tag(b, extra: Substring(userAgent).utf8, epoch: epoch)
        return Base64URL.encode(b)
    }

    /// Why a presented clearance was refused.
    public enum Failure: String, Error, Sendable, Equatable {
        /// Not a clearance at all, or the signature does not match (forged, altered, other agent).
        case forged
        /// Past its expiry or signed with a retired key.
        case expired
        /// Presented from a subnet it was not issued to (copied to another client).
        case wrongSubnet = "wrong_subnet"
    }

    /// Checks a cookie value for `client` and `userAgent`: signed by a current key for this agent,
    /// not expired, and presented from the subnet it was issued to, in the same address family.
    public static func verify(
        _ text: Substring, keys: inout SigningKeys, client: IPAddress, userAgent: String, now: Int64
    ) -> Result<Clearance, Failure> {
        guard let b = Base64URL.decode(text), b.count == bodyLength + 16, b[0] == 1 else { return .failure(.forged) }
        var r = ByteReader(b)
        r.skip(1)
        let epoch: UInt32 = r.read()
        guard keys.accepts(epoch: epoch, at: now) else { return .failure(.expired) }
        let body = Array(b[0..<bodyLength])
        guard constantTimeEqual(keys.tag(body, extra: Substring(userAgent).utf8, epoch: epoch), b[bodyLength...]) else {
            return .failure(.forged)
        }
        let levelRaw: UInt8 = r.read()
        let expires: UInt32 = r.read()
        let id: UInt64 = r.read()
        let flags: UInt8 = r.read()
        let v4: UInt32 = r.read()
        let v6: UInt64 = r.read()
        guard let level = Level(rawValue: levelRaw) else { return .failure(.forged) }
        guard Int64(expires) >= now else { return .failure(.expired) }
        let c = Clearance(level: level, expires: Int64(expires), id: id, v4: flags & 1 != 0 ? v4 : nil, v6: flags & 2 != 0 ? v6 : nil)
        if let mine = SubnetBinding.v4(client) {
            guard let bound = c.v4, bound == mine else { return .failure(.wrongSubnet) }
        } else if let mine = SubnetBinding.v6(client) {
            guard let bound = c.v6, bound == mine else { return .failure(.wrongSubnet) }
        } else {
            return .failure(.wrongSubnet)
        }
        return .success(c)
    }
}

/// A signed, short-lived value handed to a client and expected back: a proof-of-work challenge or
/// a no-JavaScript wait ticket. Bound to the client's subnet; `nonce` makes each one single-use.
public struct Stamp: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        case pow = 1
        case wait = 2
    }

    public var kind: Kind
    /// Unix seconds when it was issued.
    public var issued: Int64
    /// Difficulty in bits (pow) or seconds to wait (wait).
    public var parameter: UInt8
    /// Random, single use.
    public var nonce: UInt64
    public var subnet: UInt64

    public init(kind: Kind, issued: Int64, parameter: UInt8, nonce: UInt64 = UInt64.random(in: 1...UInt64.max), subnet: UInt64) {
        self.kind = kind
        self.issued = issued
        self.parameter = parameter
        self.nonce = nonce
        self.subnet = subnet
    }

    static let bodyLength = 27

    /// base64url of the fields and their HMAC (58 characters).
    public func encode(keys: inout SigningKeys) -> String {
        let epoch = keys.epoch(at: issued)
        var b: [UInt8] = [1, kind.rawValue]
        b.appendBigEndian(epoch)
        b.appendBigEndian(UInt32(truncatingIfNeeded: issued))
        b.append(parameter)
        b.appendBigEndian(nonce)
        b.appendBigEndian(subnet)
        b += keys.tag(b, epoch: epoch)
        return Base64URL.encode(b)
    }

    /// Decodes and checks the signature, the kind, the subnet and the age window.
    public static func verify(
        _ text: Substring, kind: Kind, keys: inout SigningKeys, client: IPAddress, now: Int64, maxAge: Int64
    ) -> Result<Stamp, Clearance.Failure> {
        guard let b = Base64URL.decode(text), b.count == bodyLength + 16, b[0] == 1, b[1] == kind.rawValue else {
            return .failure(.forged)
        }
        var r = ByteReader(b)
        r.skip(2)
        let epoch: UInt32 = r.read()
        guard keys.accepts(epoch: epoch, at: now) else { return .failure(.expired) }
        guard constantTimeEqual(keys.tag(Array(b[0..<bodyLength]), epoch: epoch), b[bodyLength...]) else {
            return .failure(.forged)
        }
        let issued: UInt32 = r.read()
        let parameter: UInt8 = r.read()
        let nonce: UInt64 = r.read()
        let subnet: UInt64 = r.read()
        let stamp = Stamp(kind: kind, issued: Int64(issued), parameter: parameter, nonce: nonce, subnet: subnet)
        guard now - stamp.issued <= maxAge, stamp.issued <= now + 5 else { return .failure(.expired) }
        guard subnet == SubnetBinding.tag(client) else { return .failure(.wrongSubnet) }
        return .success(stamp)
    }
}

/// The proof-of-work puzzle: find a decimal `answer` such that SHA-256 of the challenge text
/// followed by the answer starts with `difficulty` zero bits. The challenge page does this in
/// JavaScript with the same definition; the drill and the tests use `solve`.
public enum ProofOfWork {
    /// Leading zero bits of SHA-256(challenge + answer).
    public static func zeroBits(challenge: Substring, answer: Substring) -> Int {
        var h = SHA256()
        h.update(data: Array(challenge.utf8))
        h.update(data: Array(answer.utf8))
        return leadingZeroBits(h.finalize())
    }

    static func leadingZeroBits(_ digest: SHA256.Digest) -> Int {
        var bits = 0
        for byte in digest {
            if byte == 0 {
                bits += 8
                continue
            }
            return bits + byte.leadingZeroBitCount
        }
        return bits
    }

    /// True when `answer` solves `challenge` at `difficulty`.
    public static func check(challenge: Substring, answer: Substring, difficulty: Int) -> Bool {
        guard !answer.isEmpty, answer.utf8.count <= 12, answer.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return false }
        return zeroBits(challenge: challenge, answer: answer) >= difficulty
    }

    /// The first answer that solves `challenge` (bounded: nil after `limit` tries).
    public static func solve(challenge: String, difficulty: Int, limit: Int = 1 << 26) -> String? {
        let prefix = Array(challenge.utf8)
        var base = SHA256()
        base.update(data: prefix)
        for n in 0..<limit {
            var h = base
            h.update(data: Array(String(n).utf8))
            if leadingZeroBits(h.finalize()) >= difficulty { return String(n) }
        }
        return nil
    }
}

/// URL-safe base64 without padding (RFC 4648 section 5).
public enum Base64URL {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    static let reverse: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    public static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var i = 0
        while i + 3 <= bytes.count {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [alphabet[Int(v >> 18 & 63)], alphabet[Int(v >> 12 & 63)], alphabet[Int(v >> 6 & 63)], alphabet[Int(v & 63)]]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let v = UInt32(bytes[i]) << 16
            out += [alphabet[Int(v >> 18 & 63)], alphabet[Int(v >> 12 & 63)]]
        } else if rest == 2 {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [alphabet[Int(v >> 18 & 63)], alphabet[Int(v >> 12 & 63)], alphabet[Int(v >> 6 & 63)]]
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ text: Substring) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 4 != 1, chars.count <= 256 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count * 3 / 4)
        var acc: UInt32 = 0
        var bits = 0
        for c in chars {
            let v = reverse[Int(c)]
            guard v != 0xFF else { return nil }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        return out
    }
}

extension [UInt8] {
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }
}

struct ByteReader {
    let bytes: [UInt8]
    var offset = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    mutating func skip(_ n: Int) { offset += n }
    mutating func read<T: FixedWidthInteger>() -> T {
        var v: T = 0
        for _ in 0..<MemoryLayout<T>.size {
            v = v << 8 | T(bytes[offset])
            offset += 1
        }
        return v
    }
}

/// The most recent `capacity` single-use values (answered challenges, redeemed tickets): a value
/// seen again is a replay. Fixed memory; the oldest values fall out first, and by then the stamps
/// that carried them have expired.
public struct RecentNonces: Sendable {
    private var seen: Set<UInt64> = []
    private var order: [UInt64]
    private var next = 0
    public let capacity: Int

    public init(capacity: Int = 65_536) {
        self.capacity = max(16, capacity)
        self.order = []
        order.reserveCapacity(self.capacity)
    }

    /// Records `nonce`; false when it was seen already.
    public mutating func insert(_ nonce: UInt64) -> Bool {
        guard !seen.contains(nonce) else { return false }
        if order.count < capacity {
            order.append(nonce)
        } else {
            seen.remove(order[next])
            order[next] = nonce
            next = (next + 1) % capacity
        }
        seen.insert(nonce)
        return true
    }
}
