import Foundation
import RampartCore
import Testing

@Suite struct TrafficSummaryTests {
    /// One node's second: `heavy` requests from one heavy address, then `requests` requests from
    /// as many addresses of 10.n.0.0/16, each to its own URL.
    static func second(node: UInt32, requests: Int, heavy: Int, heavyAddress: IPAddress) -> TrafficSecond {
        var s = TrafficSecond()
        // The heavy source first: it is then counted exactly (Space-Saving overestimates only keys
        // that replaced another).
        for _ in 0..<heavy {
            s.requests += 1
            s.limited += 1
            s.topSources.add(heavyAddress)
            s.topPaths.add("/login")
        }
        for i in 0..<requests {
            let ip = IPAddress(v4: 0x0A00_0000 | node << 16 | UInt32(i))
            s.requests += 1
            s.toOrigin += 1
            s.sources.add(hash: mix64(UInt64(node) << 32 | UInt64(i)))
            s.targets.add(hash: mix64(UInt64(node) << 40 | UInt64(i)))
            s.topSources.add(ip)
        }
        s.suspects = requests / 2
        s.credentialFailures = heavy
        return s
    }

    @Test func threeNodesSumExactlyAndTheirSketchesUnite() throws {
        let heavy = try #require(IPAddress("192.0.2.7"))
        let seconds = (1...3).map { Self.second(node: UInt32($0), requests: 200, heavy: 40, heavyAddress: heavy) }
        // Through JSON, as the fleet carries them.
        let documents = try seconds.map { try JSONEncoder().encode(["www": TrafficSummary($0)]) }
        var merged = TrafficSecond()
        for d in documents {
            try #require(try JSONDecoder().decode([String: TrafficSummary].self, from: d)["www"]).merge(into: &merged)
        }
        #expect(merged.requests == 720 && merged.toOrigin == 600 && merged.limited == 120)
        // The signals' counters travel too: bot-like page views, refused credentials.
        #expect(merged.suspects == 300 && merged.credentialFailures == 120)
        // 600 distinct targets in all; each node alone saw 200 (HyperLogLog: about 3% error).
        #expect(abs(merged.targets.estimate - 600) <= 30)
        #expect(abs(seconds[0].targets.estimate - 200) <= 10)
        // The source every node saw 40 times is the fleet's heaviest, with its exact total.
        let top = try #require(merged.topSources.top(1).first)
        #expect(top.key == heavy && top.count == 120)
        #expect(merged.topPaths.top(1).first?.key == "/login")
    }

    @Test func aQuietSiteSharesItsCountersOnly() throws {
        var s = TrafficSecond()
        s.requests = 5
        s.sources.add(hash: 1)
        let summary = TrafficSummary(s)
        #expect(summary.requests == 5 && summary.sources == nil && summary.topSources == nil)
        #expect(try JSONEncoder().encode(summary).count < 250)
    }

    @Test func aDocumentOfAnOlderNodeIsStillRead() throws {
        let old = #"{"www":{"requests":30,"toOrigin":20,"cacheServed":1,"challenged":2,"cleared":3,"uncleared":4,"limited":5,"nonGet":6,"clearanceLimited":7,"originErrors":8,"shed":9}}"#
        let decoded = try JSONDecoder().decode([String: TrafficSummary].self, from: Data(old.utf8))
        var s = TrafficSecond()
        try #require(decoded["www"]).merge(into: &s)
        #expect(s.requests == 30 && s.shed == 9 && s.sources.estimate == 0)
    }
}
