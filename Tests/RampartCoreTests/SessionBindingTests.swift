import NIOHTTP1
import Testing

@testable import RampartCore

@Suite struct SessionBindingTests {
    static let now: Int64 = 1_800_000_000
    static func keys() -> SigningKeys { SigningKeys(secret: [UInt8](repeating: 3, count: 32)) }

    @Test func aCompanionBindsExactlyTheValueTheOriginSet() {
        var keys = Self.keys()
        let token = SessionBinding.sign(name: "sid", value: "abc123", keys: &keys, now: Self.now)
        #expect(SessionBinding.verify(Substring(token), name: "sid", value: "abc123", keys: &keys, now: Self.now + 10) == Self.now)
        // A made-up value, another cookie name, a value split differently: nothing.
        #expect(SessionBinding.verify(Substring(token), name: "sid", value: "abc124", keys: &keys, now: Self.now) == nil)
        #expect(SessionBinding.verify(Substring(token), name: "sid2", value: "abc123", keys: &keys, now: Self.now) == nil)
        #expect(SessionBinding.verify(Substring(token), name: "si", value: "dabc123", keys: &keys, now: Self.now) == nil)
        // Another gateway's keys, a tampered token, an expired one.
        var other = SigningKeys(secret: [UInt8](repeating: 4, count: 32))
        #expect(SessionBinding.verify(Substring(token), name: "sid", value: "abc123", keys: &other, now: Self.now) == nil)
        var tampered = Array(token.utf8)
        tampered[6] = tampered[6] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(SessionBinding.verify(Substring(String(decoding: tampered, as: UTF8.self)), name: "sid", value: "abc123", keys: &keys, now: Self.now) == nil)
        #expect(SessionBinding.verify(Substring(token), name: "sid", value: "abc123", keys: &keys, now: Self.now + SessionBinding.lifetime + 1) == nil)
        // A clearance cookie is not a companion.
        let clearance = Clearance.issue(level: .pow, client: IPAddress("198.51.100.7")!, now: Self.now, ttl: 3600).encode(keys: &keys, userAgent: "", now: Self.now)
        #expect(SessionBinding.verify(Substring(clearance), name: "sid", value: "abc123", keys: &keys, now: Self.now) == nil)
    }

    @Test func theMemberIsFoundAmongTheRequestsCookies() {
        var keys = Self.keys()
        let token = SessionBinding.sign(name: "member_session", value: "v1", keys: &keys, now: Self.now)
        let names = ["sid", "member_session"]
        let member = SessionBinding.member(
            in: ["theme=dark; sid=made-up", "member_session=v1; \(SessionBinding.cookie)=\(token)"], names: names, keys: &keys, now: Self.now)
        #expect(member?.name == "member_session")
        #expect(member?.value == "v1")
        #expect(member?.issued == Self.now)
        #expect(SessionBinding.member(in: ["member_session=v1"], names: names, keys: &keys, now: Self.now) == nil)
        #expect(SessionBinding.member(in: ["member_session=v2; \(SessionBinding.cookie)=\(token)"], names: names, keys: &keys, now: Self.now) == nil)
        // A companion with a cookie the site does not name as a session: nothing.
        #expect(SessionBinding.member(in: ["member_session=v1; \(SessionBinding.cookie)=\(token)"], names: ["sid"], keys: &keys, now: Self.now) == nil)
    }

    @Test func theOriginsSetCookieTellsALoginFromALogout() {
        let names = ["sid"]
        #expect(SessionBinding.originSet(in: ["theme=dark; Path=/", "sid=abc; Path=/; HttpOnly; Secure"], names: names) == .issued(name: "sid", value: "abc"))
        #expect(SessionBinding.originSet(in: ["theme=dark"], names: names) == nil)
        #expect(SessionBinding.originSet(in: ["sid=; Path=/"], names: names) == .cleared)
        #expect(SessionBinding.originSet(in: ["sid=deleted; Path=/"], names: names) == .cleared)
        #expect(SessionBinding.originSet(in: ["sid=abc; Max-Age=0"], names: names) == .cleared)
        #expect(SessionBinding.originSet(in: ["sid=abc; max-age=-1"], names: names) == .cleared)
        #expect(SessionBinding.originSet(in: ["sid=abc; Expires=Thu, 01 Jan 1970 00:00:00 GMT"], names: names) == .cleared)
        #expect(SessionBinding.originSet(in: ["sid=abc; Expires=Wed, 09 Jun 2027 10:18:14 GMT; Max-Age=3600"], names: names) == .issued(name: "sid", value: "abc"))
        #expect(SessionBinding.originSet(in: ["sidx=abc"], names: names) == nil)
    }

    @Test func theCompanionCookieIsHttpOnlyAndDeletable() {
        #expect(SessionBinding.setCookie("T", secure: true) == "__rampart_m=T; Path=/; Max-Age=43200; HttpOnly; SameSite=Lax; Secure")
        #expect(SessionBinding.setCookie(nil, secure: false) == "__rampart_m=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax")
    }

    @Test func theForwardedRequestLosesTheGatewaysCookies() {
        var headers = HTTPHeaders([("Cookie", "sid=abc; \(SessionBinding.cookie)=tok; __rampart=clr; theme=dark")])
        ChallengeRoutes.stripClearanceCookie(&headers)
        #expect(headers["cookie"] == ["sid=abc; theme=dark"])
    }
}
