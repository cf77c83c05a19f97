import Testing

@testable import RampartCore

/// The behaviour score on synthetic browsing sequences, time passed in.
@Suite struct BehaviourScoreTests {
    static let s: Int64 = 1_000_000_000
    static let key = IPAddress(high: 0xC1EA_4A4C_E000_0000, low: 42)

    static func run(_ kinds: [RequestKind], table: inout BehaviourScore, key: IPAddress = key, start: Int64 = 0) -> [Int] {
        var scores: [Int] = []
        for (i, kind) in kinds.enumerated() { scores.append(table.observe(key, kind: kind, now: start + Int64(i) * Self.s)) }
        return scores
    }

    @Test func aCookieKeepingBotWithoutAssetsOrLinksBecomesASuspectAfterAFewPages() {
        var t = BehaviourScore(capacity: 64, seed: 1)
        let scores = Self.run([.page(referred: false), .search(referred: false), .page(referred: false), .search(referred: false), .page(referred: false)], table: &t)
        #expect(scores.prefix(3).allSatisfy { $0 == 50 })
        #expect(scores[3] < BehaviourScore.suspectBelow && scores[4] < BehaviourScore.suspectBelow)
    }

    @Test func peopleWhoLoadAssetsOrFollowLinksAreNot() {
        var browser = BehaviourScore(capacity: 64, seed: 1)
        var kinds: [RequestKind] = []
        for _ in 0..<10 { kinds += [.page(referred: false), .asset, .asset] }
        #expect(Self.run(kinds, table: &browser).allSatisfy { $0 >= 50 })
        // Assets from the browser's cache: none requested, but every page after the first came
        // from a link on the site.
        var cached = BehaviourScore(capacity: 64, seed: 1)
        let reader = [RequestKind.page(referred: false)] + Array(repeating: .page(referred: true), count: 9)
        #expect(Self.run(reader, table: &cached).allSatisfy { $0 >= BehaviourScore.suspectBelow })
        // A person who searches a lot, with a browser: not a suspect.
        var searcher = BehaviourScore(capacity: 64, seed: 1)
        var searches: [RequestKind] = []
        for _ in 0..<6 { searches += [.search(referred: true), .asset] }
        #expect(Self.run(searches, table: &searcher).allSatisfy { $0 >= BehaviourScore.suspectBelow })
    }

    @Test func historyEarnsALittleAndAnUnknownClearanceIsNeutral() {
        var t = BehaviourScore(capacity: 64, seed: 1)
        #expect(t.score(Self.key, now: 0) == 50)
        _ = t.observe(Self.key, kind: .page(referred: false), now: 0)
        #expect(t.score(Self.key, now: 601 * Self.s) == 60)
        // Other requests (API, feeds) neither help nor hurt.
        #expect(t.observe(Self.key, kind: .other, now: 0) == 50)
    }

    @Test func theTableIsBoundedAndEvictsTheLeastRecentlySeen() {
        var t = BehaviourScore(capacity: 16, seed: 7)
        for i in 0..<1000 {
            let k = IPAddress(high: 1, low: UInt64(i))
            for _ in 0..<5 { _ = t.observe(k, kind: .page(referred: false), now: Int64(i)) }
        }
        var remembered = 0
        for i in 0..<1000 where t.score(IPAddress(high: 1, low: UInt64(i)), now: 2000) < 50 { remembered += 1 }
        #expect(remembered <= 16)
        #expect(t.score(IPAddress(high: 1, low: 999), now: 2000) < BehaviourScore.suspectBelow)
    }

    @Test func requestsAreClassified() {
        #expect(RequestKind.classify(path: "/static/site.css", query: nil, referer: nil, host: "example.org") == .asset)
        #expect(RequestKind.classify(path: "/img/logo.PNG", query: nil, referer: nil, host: "example.org") == .asset)
        #expect(RequestKind.classify(path: "/news/2026/budget", query: nil, referer: "https://example.org/news", host: "example.org") == .page(referred: true))
        #expect(RequestKind.classify(path: "/news", query: nil, referer: "https://evil.example/x", host: "example.org") == .page(referred: false))
        #expect(RequestKind.classify(path: "/news", query: nil, referer: "http://example.org:8080/", host: "example.org:8080") == .page(referred: true))
        #expect(RequestKind.classify(path: "/search", query: "q=tax+deadline", referer: nil, host: "example.org") == .search(referred: false))
        #expect(RequestKind.classify(path: "/", query: "s=abc", referer: nil, host: "example.org") == .search(referred: false))
        #expect(RequestKind.classify(path: "/api/status", query: nil, referer: nil, host: "example.org") == .other)
        #expect(RequestKind.classify(path: "/sitemap.xml", query: nil, referer: nil, host: "example.org") == .other)
    }
}
