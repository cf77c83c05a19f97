import NIOHTTP1

/// How the gateway knows that a session cookie is one the origin issued, not one a bot made up.
///
/// When an origin answer sets one of the site's `session_cookies` (a login), the gateway adds a
/// companion cookie, `__rampart_m`, holding an HMAC over the session cookie's name and value and
/// the time it was issued, signed with the same rotating keys as clearances (so every event loop and
/// every node of a fleet checks it without shared state). A request is a member's when it carries a
/// session cookie and a companion whose tag matches that cookie's exact value, within
/// ``lifetime``. A bot that sends a cookie with the session's name, a random value, or a
/// companion copied from another session earns nothing: the tag is over the value.
///
/// The companion is refreshed (re-signed) on a member's successful request once it is older than
/// ``refreshAfter``, so an active member stays bound across key rotations; a session the origin
/// deletes (logout) loses its companion with it.
public enum SessionBinding {
    /// Name of the companion cookie.
    public static let cookie = "__rampart_m"
    /// Seconds a companion is accepted after it was signed.
    public static let lifetime: Int64 = 12 * 3600
    /// Seconds after which a member's successful request gets a freshly signed companion.
    public static let refreshAfter: Int64 = 3600
    static let marker: UInt8 = 0x4D
    static let bodyLength = 9

    /// The companion's value for the session cookie `name=value`, signed at `now` (Unix seconds).
    public static func sign(name: Substring, value: Substring, keys: inout SigningKeys, now: Int64) -> String {
        let epoch = keys.epoch(at: now)
        var b: [UInt8] = [marker]
        b.appendBigEndian(epoch)
        b.appendBigEndian(UInt32(truncatingIfNeeded: max(0, now)))
        b += tag(b, name: name, value: value, keys: &keys, epoch: epoch)
        return Base64URL.encode(b)
    }

    /// When the companion `token` was signed (Unix seconds), if it binds the session cookie
    /// `name=value` and is still good at `now`; nil for a forged, foreign or expired one.
    public static func verify(_ token: Substring, name: Substring, value: Substring, keys: inout SigningKeys, now: Int64) -> Int64? {
        guard let b = Base64URL.decode(token), b.count == bodyLength + 16, b[0] == marker else { return nil }
        var r = ByteReader(b)
        r.skip(1)
        let epoch: UInt32 = r.read()
        let issued: UInt32 = r.read()
        guard keys.accepts(epoch: epoch, at: now), now - Int64(issued) <= lifetime, Int64(issued) <= now + 60 else { return nil }
        let body = Array(b[0..<bodyLength])
        guard constantTimeEqual(tag(body, name: name, value: value, keys: &keys, epoch: epoch), b[bodyLength...]) else { return nil }
        return Int64(issued)
    }

    /// The member's session in a request: the first cookie named in `names` whose value the
    /// companion in the same headers binds. Nil when there is no companion or it binds none of them.
    public static func member(in cookieHeaders: [String], names: [String], keys: inout SigningKeys, now: Int64) -> Member? {
        guard let token = ChallengeRoutes.cookie(cookie, in: cookieHeaders) else { return nil }
        for header in cookieHeaders {
            for part in header.split(separator: ";") {
                let kv = part.trimmingASCIISpaces().split(separator: "=", maxSplits: 1)
                guard kv.count == 2, !kv[1].isEmpty, names.contains(where: { kv[0] == $0 }) else { continue }
                if let issued = verify(token, name: kv[0], value: kv[1], keys: &keys, now: now) {
                    return Member(name: kv[0], value: kv[1], issued: issued)
                }
            }
        }
        return nil
    }

    /// A session cookie a request carried and its companion bound.
    public struct Member: Sendable, Equatable {
        public var name: Substring
        public var value: Substring
        /// Unix seconds the companion was signed.
        public var issued: Int64
    }

    /// What an origin answer does to a session cookie named in `names`.
    public enum OriginSet: Sendable, Equatable {
        /// It set the cookie to this value: a session begins (a login).
        case issued(name: Substring, value: Substring)
        /// It deleted the cookie (empty value, `Max-Age` of zero or less, or an `Expires` before
        /// 2000): the session ends (a logout).
        case cleared
    }

    /// The first `Set-Cookie` in an origin answer that concerns one of `names`.
    public static func originSet(in setCookies: [String], names: [String]) -> OriginSet? {
        for line in setCookies {
            let attributes = line.split(separator: ";", omittingEmptySubsequences: false)
            guard let first = attributes.first, let eq = first.firstIndex(of: "=") else { continue }
            let name = first[..<eq].trimmingASCIISpaces()
            guard names.contains(where: { name == $0 }) else { continue }
            let value = first[first.index(after: eq)...].trimmingASCIISpaces()
            if value.isEmpty || value == "deleted" { return .cleared }
            for attribute in attributes.dropFirst() {
                let kv = attribute.trimmingASCIISpaces().split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else { continue }
                if kv[0].lowercased() == "max-age", let age = Int(kv[1].trimmingASCIISpaces()), age <= 0 { return .cleared }
                if kv[0].lowercased() == "expires", let year = Self.year(kv[1]), year < 2000 { return .cleared }
            }
            return .issued(name: name, value: value)
        }
        return nil
    }

    /// The `Set-Cookie` value that carries a companion to the client (or deletes it, for nil).
    public static func setCookie(_ token: String?, secure: Bool) -> String {
        guard let token else { return "\(cookie)=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax\(secure ? "; Secure" : "")" }
        return "\(cookie)=\(token); Path=/; Max-Age=\(lifetime); HttpOnly; SameSite=Lax\(secure ? "; Secure" : "")"
    }

    /// The first four-digit number in an HTTP date (`Thu, 01 Jan 1970 00:00:00 GMT`).
    static func year(_ date: Substring) -> Int? {
        for word in date.split(whereSeparator: { $0 == " " || $0 == "-" }) where word.utf8.count == 4 {
            if let y = Int(word) { return y }
        }
        return nil
    }

    private static func tag(_ body: [UInt8], name: Substring, value: Substring, keys: inout SigningKeys, epoch: UInt32) -> [UInt8] {
        // Name and value are separated by a byte no cookie name holds, so `a`+`bc` and `ab`+`c` differ.
        var bound = String(name)
        bound += "\u{0}"
        bound += value
        return keys.tag(body, extra: Substring(bound).utf8, epoch: epoch)
    }
}
