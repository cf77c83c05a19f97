import RampartCore
import Testing
@testable import RampartFleet

@Suite struct RaisedModeRenewalTests {
    @Test func aRaiseIsWrittenAtOnceThenRenewedEveryThirdOfItsTimeToLive() throws {
        var r = RaisedModeRenewal()
        #expect(r.plan(now: 0, ttl: 30) == nil)
        r.set(site: "www", mode: .underAttack, tier: .cookie, reason: "flood")
        let first = try #require(r.plan(now: 0, ttl: 30))
        #expect(first.upsert.map(\.site) == ["www"] && first.delete.isEmpty && first.changed)
        r.written(first, now: 0)
        #expect(r.plan(now: 9.9, ttl: 30) == nil)
        let renewal = try #require(r.plan(now: 10, ttl: 30))
        #expect(renewal.upsert.map(\.mode) == [.underAttack] && !renewal.changed)
        r.written(renewal, now: 10)
        #expect(r.plan(now: 15, ttl: 30) == nil)
    }

    @Test func goingBackToNormalWithdrawsTheModeAtOnce() throws {
        var r = RaisedModeRenewal()
        r.set(site: "www", mode: .elevated, tier: .cookie, reason: "surge")
        r.written(try #require(r.plan(now: 0, ttl: 30)), now: 0)
        r.set(site: "www", mode: .normal, tier: .cookie, reason: "calm")
        let plan = try #require(r.plan(now: 1, ttl: 30))
        #expect(plan.upsert.isEmpty && plan.delete == ["www"] && plan.changed)
        r.written(plan, now: 1)
        #expect(r.plan(now: 100, ttl: 30) == nil)
        // Normal on a site that held nothing writes nothing.
        r.set(site: "shop", mode: .normal, tier: .cookie, reason: "")
        #expect(r.plan(now: 101, ttl: 30) == nil)
    }

    @Test func aFailedWriteIsTriedAgainAndAReconnectionRewritesEverything() throws {
        var r = RaisedModeRenewal()
        r.set(site: "www", mode: .underAttack, tier: .cookie, reason: "flood")
        _ = try #require(r.plan(now: 0, ttl: 30))  // the write failed: not marked written
        #expect(r.plan(now: 0.5, ttl: 30)?.changed == true)
        r.written(try #require(r.plan(now: 0.5, ttl: 30)), now: 0.5)
        // A tier change is a change.
        r.set(site: "www", mode: .underAttack, tier: .pow, reason: "keeps cookies")
        #expect(r.plan(now: 1, ttl: 30)?.upsert.map(\.tier) == [.pow])
        r.written(try #require(r.plan(now: 1, ttl: 30)), now: 1)
        r.reconnected()
        #expect(r.plan(now: 2, ttl: 30)?.upsert.map(\.site) == ["www"])
    }
}
