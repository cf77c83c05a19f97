import NIOHTTP1
import NIOCore
import Testing

@testable import RampartCore

@Suite struct KnownGoodTableTests {
    let s: Int64 = 1_000_000_000

    @Test func earnedBySuccessesOverTimeAndLostOnAViolation() {
        var t = KnownGoodTable(capacity: 64, threshold: 3, minimumAge: .seconds(30), lifetime: .seconds(3600), seed: 3)
        let a = IPAddress("192.0.2.7")!
        t.recordSuccess(a, now: 0)
        t.recordSuccess(a, now: 1 * s)
        t.recordSuccess(a, now: 2 * s)
        #expect(!t.contains(a, now: 2 * s), "new sources must not jump the queue at once")
        #expect(t.contains(a, now: 31 * s))
        t.forget(a)
        #expect(!t.contains(a, now: 31 * s))
        #expect(!t.contains(IPAddress("192.0.2.8")!, now: 31 * s))
    }

    @Test func priorityExpires() {
        var t = KnownGoodTable(capacity: 64, threshold: 1, minimumAge: .zero, lifetime: .seconds(10), seed: 3)
        let a = IPAddress("192.0.2.7")!
        t.recordSuccess(a, now: 0)
        #expect(t.contains(a, now: 9 * s))
        #expect(!t.contains(a, now: 10 * s))
    }

    @Test func aFloodOfNewAddressesDoesNotEvictEstablishedClients() {
        var t = KnownGoodTable(capacity: 1024, threshold: 3, minimumAge: .zero, lifetime: .seconds(3600), seed: 9)
        let regulars = (0..<100).map { IPAddress(v4: 0xC000_0200 | UInt32($0)) }
        for r in regulars { for i in 0..<5 { t.recordSuccess(r, now: Int64(i) * s) } }
        for i in 0..<100_000 { t.recordSuccess(IPAddress(v4: 0x7F80_0000 | UInt32(i)), now: 10 * s) }
        let kept = regulars.filter { t.contains($0, now: 10 * s) }.count
        #expect(kept >= 95, "only \(kept) of 100 regular clients kept priority")
    }
}

@Suite struct CredentialKeyTests {
    @Test func sessionCookiesAndBearerTokens() {
        let a = CredentialKey.find(in: ["Cookie": "theme=dark; sessionid=abc123"], cookies: ["sessionid"], bearer: false, apiKey: nil)
        let b = CredentialKey.find(in: ["Cookie": "sessionid=abc123"], cookies: ["sessionid"], bearer: false, apiKey: nil)
        let c = CredentialKey.find(in: ["Cookie": "sessionid=other"], cookies: ["sessionid"], bearer: false, apiKey: nil)
        #expect(a != nil && a == b)
        #expect(a != c)
        #expect(CredentialKey.find(in: ["Cookie": "theme=dark"], cookies: ["sessionid"], bearer: false, apiKey: nil) == nil)
        #expect(CredentialKey.find(in: ["Cookie": "sessionid="], cookies: ["sessionid"], bearer: false, apiKey: nil) == nil)
        let headers: HTTPHeaders = ["Authorization": "Bearer user-token-1"]
        let presented = PresentedAPIKey.find(in: headers, configured: [])
        #expect(CredentialKey.find(in: headers, cookies: [], bearer: true, apiKey: presented) != nil)
        #expect(CredentialKey.find(in: headers, cookies: [], bearer: false, apiKey: presented) == nil)
    }
}

@Suite struct TwoClassQueueTests {
    @Test func priorityFirstButRegularEntriesAreNotStarved() {
        var q = TwoClassQueue<String>(regularShare: 4)
        for i in 0..<3 { q.regular.append("r\(i)") }
        for i in 0..<9 { q.priority.append("p\(i)") }
        var order: [String] = []
        while let next = q.popNext() { order.append(next) }
        // Three priority picks, then one regular, while both wait; then whatever is left.
        #expect(order == ["p0", "p1", "p2", "r0", "p3", "p4", "p5", "r1", "p6", "p7", "p8", "r2"])
        #expect(q.count == 0 && q.popNext() == nil)
    }

    @Test func aLoneClassIsServedInOrder() {
        var q = TwoClassQueue<Int>()
        for i in 0..<5 { q.regular.append(i) }
        #expect((0..<5).map { _ in q.popNext() } == [0, 1, 2, 3, 4])
        for i in 0..<5 { q.priority.append(i) }
        #expect((0..<5).map { _ in q.popNext() } == [0, 1, 2, 3, 4])
    }

    @Test func aKnownGoodClientStillJumpsAFullRegularQueue() {
        var q = TwoClassQueue<String>(regularShare: 8)
        for i in 0..<8 { q.regular.append("stranger\(i)") }
        _ = q.popNext()  // the queue was served from the regular class just before
        q.priority.append("regular visitor")
        #expect(q.popNext() == "regular visitor")
    }
}
