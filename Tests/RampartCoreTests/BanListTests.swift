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

    @Test func extremeDurationsSaturateInsteadOfTrappingOrWrapping() {
        // The review's config: a first ban of 9223372036 s, with a cap that does not shorten it.
        var policy = BanPolicy()
        policy.duration = .seconds(9_223_372_036)
        policy.maxDuration = .nanoseconds(.max)
        var list = BanList(policy: policy)
        let a = IPAddress("203.0.113.9")!
        let now: Int64 = 5_000 * s
        #expect(list.ban(a, now: now) == .seconds(9_223_372_036))
        #expect(list.isBanned(a, now: .max - 1))
        // A repeat offender's doubled ban saturates at the end of the clock, never wraps negative.
        list.restore(a, until: now, level: 0, now: now)
        #expect(list.ban(a, now: now + 1) == .nanoseconds(.max))
        #expect(list.isBanned(a, now: .max - 1))
        #expect(list.entry(a)?.until == .max)
        let b = IPAddress("203.0.113.10")!
        list.restore(b, until: 1, level: 40, now: now)
        #expect(list.ban(b, now: now) == .nanoseconds(.max))
        // An operator's ban past the end of the clock ends with the clock.
        #expect(list.ban(IPAddress("203.0.113.11")!, now: now, length: .nanoseconds(.max)) == .max)
        // Eviction with the longest memory: no overflow either.
        policy.capacity = 16
        var full = BanList(policy: policy)
        for i in 0..<40 { full.ban(IPAddress(v4: 0x0A00_0000 | UInt32(i)), now: Int64(i) * s) }
        #expect(full.count <= 16)
    }

    @Test func aNegativeOrZeroPolicyStillBansForAtLeastANanosecond() {
        var policy = BanPolicy()
        policy.duration = .seconds(-60)
        policy.maxDuration = .zero
        var list = BanList(policy: policy)
        let a = IPAddress("203.0.113.9")!
        #expect(list.ban(a, now: 10) == .nanoseconds(1))
        #expect(list.isBanned(a, now: 10) && !list.isBanned(a, now: 11))
    }

    @Test func strikeCountersTakeAnyPolicy() {
        var policy = BanPolicy()
        policy.strikes = .infinity
        policy.strikesPerSecond = .nan
        var counter = StrikeCounter(policy: policy, loops: 3)
        #expect((0..<1000).allSatisfy { !counter.strike(IPAddress("203.0.113.9")!, now: Int64($0)) })
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
