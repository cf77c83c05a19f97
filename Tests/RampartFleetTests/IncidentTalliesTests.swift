import Foundation
import RampartCore
import RampartDataPlane
import Testing

@testable import RampartFleet

@Suite struct IncidentTalliesTests {
    static func counts(_ requests: Int, limited: Int = 0) -> IncidentCounts {
        var s = TrafficSecond()
        s.requests = requests
        s.limited = limited
        return IncidentCounts(s)
    }

    @Test func anIncidentFirstSeenLateStillCountsItsFirstSecondsAndOnlyItsSite() {
        var t = IncidentTallies()
        t.add(["www": Self.counts(5)], at: 99)
        t.add(["www": Self.counts(10, limited: 4), "api": Self.counts(50)], at: 100)
        t.add(["www": Self.counts(30, limited: 20)], at: 101)
        t.open(1, site: "www", start: 100, node: "edge-1")
        t.add(["www": Self.counts(20, limited: 1), "api": Self.counts(70)], at: 102)
        let f = t.figures[1]
        #expect(f?.requests == 60 && f?.refused == 25 && f?.peakRequestsPerSecond == 30)
        #expect(f?.node == "edge-1" && f?.start == 100)
    }

    @Test func aClosedIncidentStopsCounting() {
        var t = IncidentTallies()
        t.open(2, site: "www", start: 0, node: "n")
        t.add(["www": Self.counts(3)], at: 1)
        t.figures[2]?.end = 1
        t.add(["www": Self.counts(100)], at: 2)
        #expect(t.figures[2]?.requests == 3)
    }

    @Test func eventsOfTheNewKindsAreReadBack() throws {
        let rule = OperatorRule(id: "ab", action: .deny, cidr: "192.0.2.0/24", site: nil, until: 0, reason: "r", by: "operator", decided: 5)
        let json = String(decoding: try JSONEncoder().encode(rule), as: UTF8.self)
        #expect(FleetDatabase.sharedDecision(kind: "rule", subject: "ab", until: 0, reason: json, actor: "operator") == .rule(rule))
        #expect(FleetDatabase.sharedDecision(kind: "revoke", subject: "18446744073709551615", until: 9, reason: "www", actor: "automatic")
            == .revoke(site: "www", clearance: .max, until: 9, by: "automatic"))
        #expect(FleetDatabase.sharedDecision(kind: "unrule", subject: "ab", until: 0, reason: "", actor: "operator") == .unrule(id: "ab", by: "operator"))
        #expect(FleetDatabase.sharedDecision(kind: "revoke", subject: "not a number", until: 9, reason: "www", actor: "x") == nil)
        #expect(FleetDatabase.sharedDecision(kind: "from-the-future", subject: "", until: 0, reason: "", actor: "") == nil)
    }
}
