import RampartCore
import Testing

@Suite struct RaisedModeLeasesTests {
    static func raised(_ node: String, _ mode: SiteMode, _ tier: ChallengeTier = .cookie) -> RaisedMode {
        RaisedMode(node: node, mode: mode, tier: tier, reason: "test")
    }

    @Test func theStrongestLiveLeaseOfEachSiteWins() {
        var leases = RaisedModeLeases()
        leases.replace(with: [
            ("www", Self.raised("a", .elevated), 30),
            ("www", Self.raised("b", .underAttack), 30),
            ("www", Self.raised("c", .underAttack, .pow), 30),
            ("shop", Self.raised("a", .elevated), 30),
        ], now: 100)
        let strongest = leases.strongest(now: 100)
        #expect(strongest["www"] == Self.raised("c", .underAttack, .pow))
        #expect(strongest["shop"]?.mode == .elevated)
    }

    @Test func aLeaseNotRenewedLapsesAtItsTimeToLive() {
        var leases = RaisedModeLeases()
        leases.replace(with: [("www", Self.raised("a", .underAttack), 3), ("www", Self.raised("b", .elevated), 10)], now: 0)
        #expect(leases.strongest(now: 2.9)["www"]?.mode == .underAttack)
        // a's lapsed: b's weaker one is left, then none.
        #expect(leases.strongest(now: 3)["www"] == Self.raised("b", .elevated))
        leases.expire(now: 10)
        #expect(leases.strongest(now: 10).isEmpty)
        #expect(leases.isEmpty)
    }

    @Test func aFullReadReplacesEveryLease() {
        var leases = RaisedModeLeases()
        leases.replace(with: [("www", Self.raised("a", .underAttack), 30)], now: 0)
        // a withdrew it (back to normal): the next read no longer has it.
        leases.replace(with: [], now: 1)
        #expect(leases.strongest(now: 1).isEmpty)
        // A renewal moves the expiry on.
        leases.replace(with: [("www", Self.raised("a", .elevated), 3)], now: 2)
        leases.replace(with: [("www", Self.raised("a", .elevated), 3)], now: 4)
        #expect(leases.strongest(now: 6.5)["www"]?.mode == .elevated)
    }

    @Test func anOperatorsModeWinsOverEverythingElseTheStrongerAutomaticOneHolds() {
        let fleet = Self.raised("b", .underAttack, .pow)
        #expect(modeInForce(override: .normal, automatic: .elevated, tier: .cookie, fixedTier: nil, raised: fleet) == (.normal, .cookie))
        #expect(modeInForce(override: nil, automatic: .elevated, tier: .cookie, fixedTier: nil, raised: fleet) == (.underAttack, .pow))
        #expect(modeInForce(override: nil, automatic: .underAttack, tier: .cookie, fixedTier: nil, raised: Self.raised("b", .elevated)) == (.underAttack, .cookie))
        #expect(modeInForce(override: nil, automatic: .normal, tier: .cookie, fixedTier: .cookie, raised: fleet) == (.underAttack, .cookie))
        #expect(modeInForce(override: nil, automatic: .elevated, tier: .cookie, fixedTier: nil, raised: nil) == (.elevated, .cookie))
    }
}
