import NIOCore
import Testing

@testable import RampartCore

@Suite struct BanListTests {
    let s: Int64 = 1_000_000_000

    @Test func bansExpireAndDoubleOnRepeat() {
        var policy = BanPolicy()
        policy.duration = .seconds(60)
        policy.maxDuration = .seconds(200)
        var list = BanList(policy: policy)
        let a = IPAddress("203.0.113.9")!
        #expect(list.ban(a, now: 0) == .seconds(60))
        #expect(list.isBanned(a, now: 59 * s))
        #expect(!list.isBanned(a, now: 60 * s))
        #expect(list.ban(a, now: 61 * s) == .seconds(120))
        #expect(list.ban(a, now: 200 * s) == .seconds(200))  // capped
        list.unban(a)
        #expect(!list.isBanned(a, now: 201 * s))
    }

    @Test func theListNeverOutgrowsItsCapacity() {
        var policy = BanPolicy()
        policy.capacity = 1000
        var list = BanList(policy: policy)
        for i in 0..<5000 { list.ban(IPAddress(v4: 0x0A00_0000 | UInt32(i)), now: Int64(i) * 1000) }
        #expect(list.count <= 1000)
        #expect(list.isBanned(IPAddress(v4: 0x0A00_0000 | 4999), now: 5000 * 1000))
    }

    @Test func strikesLeadToABan() {
        var policy = BanPolicy()
        policy.strikes = 5
        policy.strikesPerSecond = 1
        var counter = StrikeCounter(policy: policy, loops: 1)
        let a = IPAddress("203.0.113.9")!
        let results = (0..<6).map { _ in counter.strike(a, now: 0) }
        #expect(results == [false, false, false, false, false, true])
        // A slow trickle of refusals (below the strike rate) never bans.
        var slow = StrikeCounter(policy: policy, loops: 1)
        #expect((0..<100).allSatisfy { !slow.strike(a, now: Int64($0) * 2 * s) })
    }
}
