import Foundation
import Testing

@testable import RampartCore

@Suite struct OperatorRulesTests {
    static func rule(_ action: OperatorRule.Action, _ cidr: String, site: String? = nil, until: Int64 = 0) -> OperatorRule {
        OperatorRule(id: "r-\(cidr)", action: action, cidr: cidr, site: site, until: until, reason: "test", by: "operator", decided: 1_000)
    }

    @Test func denyAndAllowMatchTheirBlockOnTheirSite() throws {
        let set = OperatorRuleSet([
            Self.rule(.deny, "192.0.2.0/24", site: "www"),
            Self.rule(.allow, "198.51.100.7"),
            Self.rule(.deny, "not a block"),
        ])
        let inBlock = try #require(IPAddress("192.0.2.9"))
        #expect(set.denies(inBlock, site: "www", now: 2_000))
        #expect(!set.denies(inBlock, site: "api", now: 2_000))
        #expect(!set.allows(inBlock, site: "www", now: 2_000))
        let partner = try #require(IPAddress("198.51.100.7"))
        #expect(set.allows(partner, site: "www", now: 2_000) && set.allows(partner, site: nil, now: 2_000))
        #expect(!set.denies(partner, site: "www", now: 2_000))
        #expect(OperatorRuleSet().isEmpty && !set.isEmpty)
    }

    @Test func aRuleWithAnEndStopsMatchingThen() throws {
        let set = OperatorRuleSet([Self.rule(.deny, "2001:db8::/32", until: 5_000)])
        let client = try #require(IPAddress("2001:db8::1"))
        #expect(set.denies(client, site: "www", now: 4_999))
        #expect(!set.denies(client, site: "www", now: 5_000))
        #expect(Self.rule(.deny, "2001:db8::/32", until: 5_000).inForce(at: 4_999) && !Self.rule(.deny, "2001:db8::/32", until: 5_000).inForce(at: 5_000))
        #expect(Self.rule(.allow, "2001:db8::/32").inForce(at: .max))
    }

    @Test func sharedDecisionsOfTheNewKindsRoundTripThroughJSON() throws {
        let decisions: [SharedDecision] = [
            .revoke(site: "www", clearance: .max, until: 9_000, by: "automatic"),
            .rule(Self.rule(.deny, "192.0.2.0/24", site: "www")),
            .unrule(id: "r-1", by: "operator"),
        ]
        let data = try JSONEncoder().encode(decisions)
        #expect(try JSONDecoder().decode([SharedDecision].self, from: data) == decisions)
        #expect(decisions.allSatisfy { !$0.isBan })
        #expect(decisions.map(\.subject) == ["www/18446744073709551615", "r-192.0.2.0/24", "r-1"])
    }
}
