import NIOHTTP1
import Testing

@testable import RampartCore

/// The behaviour score on synthetic browsing sequences, time passed in.
@Suite struct BehaviourScoreTests {
    static let s: Int64 = 1_000_000_000
    static let key = IPAddress(high: 0xC1EA_4A4C_E000_0000, low: 42)
    static let person = IPAddress("198.51.100.7")!
    static let botFingerprint: UInt64 = 0xB07
    static let browserFingerprint: UInt64 = 0xB40

    /// One client's requests, one a second from `start`; its own scores after each.
    static func run(
        _ kinds: [RequestKind], table: inout BehaviourScore, key: IPAddress = key, client: IPAddress = person,
        fingerprint: UInt64 = browserFingerprint, start: Int64 = 0
    ) -> [Int] {
        var scores: [Int] = []
        for (i, kind) in kinds.enumerated() {
            scores.append(table.observe(kind, client: client, clearance: key, fingerprint: fingerprint, now: start + Int64(i) * Self.s).own ?? 50)
        }
        return scores
    }

    /// Address `n` of a botnet with one member per /24 (as the drill's bots are).
    static func bot(_ n: Int) -> IPAddress { IPAddress(v4: 0x0A00_0000 &+ UInt32(n) * 256 &+ 1) }

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
        let scores = Self.run(kinds, table: &browser)
        #expect(scores.allSatisfy { $0 >= 50 })
        // Loads its pages' assets: trusted, even without referrers (reloads, typed addresses).
        #expect(browser.standing(client: Self.person, clearance: Self.key, fingerprint: Self.browserFingerprint, now: 40 * Self.s).trusted)
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
        // Someone whose browser fetches few assets (one per three pages) and never a link: not a suspect either.
        var sparse = BehaviourScore(capacity: 64, seed: 1)
        var few: [RequestKind] = []
        for _ in 0..<4 { few += [.page(referred: false), .page(referred: false), .page(referred: false), .asset] }
        #expect(Self.run(few, table: &sparse).allSatisfy { $0 >= BehaviourScore.suspectBelow })
    }

    @Test func historyEarnsALittleAndAnUnknownClientIsNeutral() {
        var t = BehaviourScore(capacity: 64, seed: 1)
        #expect(t.score(Self.key, now: 0) == 50)
        let standing = t.standing(client: Self.person, clearance: Self.key, fingerprint: 1, now: 0)
        #expect(standing.own == nil && standing.group == nil && standing.score == 50 && !standing.suspect)
        for i in 0..<4 {
            t.observe(.page(referred: true), client: Self.person, clearance: Self.key, fingerprint: 1, now: Int64(i) * Self.s)
            t.observe(.asset, client: Self.person, clearance: Self.key, fingerprint: 1, now: Int64(i) * Self.s)
        }
        #expect(t.score(Self.key, now: 10 * Self.s) == 85)
        #expect(t.score(Self.key, now: 601 * Self.s) == 95)
        // Other requests (API, feeds) neither help nor hurt.
        #expect(t.observe(.other, client: Self.person, clearance: Self.key, fingerprint: 1, now: 10 * Self.s).own == 85)
    }

    @Test func aBotnetSharingAFingerprintIsKnownBeforeAnyOfItsAddressesShowedFourPages() {
        var t = BehaviourScore(capacity: 4096, seed: 3)
        // The first 40 pages of 2,000 bots, each in its own /24, each on its first page.
        var now: Int64 = 0
        for n in 0..<40 {
            let st = t.observe(n % 3 == 2 ? .search(referred: false) : .page(referred: false), client: Self.bot(n), clearance: nil, fingerprint: Self.botFingerprint, now: now)
            #expect(st.own == nil)
            now += Self.s / 2000
        }
        // The next bot, new, inherits its fingerprint's score before it asked for anything.
        let fresh = t.standing(client: Self.bot(41), clearance: nil, fingerprint: Self.botFingerprint, now: now)
        #expect(fresh.own == nil && fresh.suspect)
        // A person with another browser, seen for the first time, is not.
        for i in 0..<10 {
            t.observe(.page(referred: false), client: IPAddress(v4: 0xC633_6400 &+ UInt32(i) * 256 &+ 7), clearance: nil, fingerprint: Self.browserFingerprint, now: now)
            t.observe(.asset, client: IPAddress(v4: 0xC633_6400 &+ UInt32(i) * 256 &+ 7), clearance: nil, fingerprint: Self.browserFingerprint, now: now)
        }
        let newcomer = t.standing(client: IPAddress("203.0.113.200")!, clearance: nil, fingerprint: Self.browserFingerprint, now: now)
        #expect(newcomer.group != nil && !newcomer.suspect)
        // Its own pages speak over its group's: a bot-fingerprinted client that loads assets is not a suspect.
        let mimic = IPAddress("192.0.2.77")!
        var last = BehaviourScore.Standing(own: nil, group: nil)
        for _ in 0..<4 {
            t.observe(.page(referred: true), client: mimic, clearance: nil, fingerprint: Self.botFingerprint, now: now)
            last = t.observe(.asset, client: mimic, clearance: nil, fingerprint: Self.botFingerprint, now: now)
        }
        #expect(last.own != nil && !last.suspect && last.group! < BehaviourScore.suspectBelow)
    }

    @Test func aSubnetIsAGroupAndANewClearanceFallsBackToItsAddress() {
        var t = BehaviourScore(capacity: 1024, seed: 5)
        // Bots rotating addresses within one /24, each address fresh, a new fingerprint each.
        for i in 0..<10 {
            t.observe(.page(referred: false), client: IPAddress(v4: 0xCB00_7100 &+ UInt32(i + 1)), clearance: nil, fingerprint: UInt64(i), now: Int64(i) * Self.s)
        }
        #expect(t.standing(client: IPAddress("203.0.113.99")!, clearance: nil, fingerprint: 99, now: 10 * Self.s).suspect)
        // An address that browsed like a bot before it held a clearance is still a suspect with its
        // new cookie-check clearance.
        let address = IPAddress("198.18.0.9")!
        for i in 0..<4 { t.observe(.search(referred: false), client: address, clearance: nil, fingerprint: 500, now: Int64(i) * Self.s) }
        let withClearance = t.observe(.page(referred: false), client: address, clearance: Self.key, fingerprint: 500, now: 5 * Self.s)
        #expect(withClearance.own != nil && withClearance.ownSuspect)
    }

    @Test func aReferrerCountsOnlyWhenItNamesAPageTheClientFetched() {
        func browse(_ steps: [(target: String, referer: String?)], client: IPAddress, table: inout BehaviourScore) -> BehaviourScore.Standing {
            var last = BehaviourScore.Standing(own: nil, group: nil)
            for (i, step) in steps.enumerated() {
                let path = step.target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
                let kind = RequestKind.classify(path: path[0], query: path.count > 1 ? path[1] : nil, referer: step.referer, host: "example.org")
                let chain = PageChain.of(target: Substring(step.target), referer: step.referer, host: "example.org")
                last = table.observe(kind, client: client, clearance: nil, fingerprint: 1, chain: chain, now: Int64(i) * Self.s)
            }
            return last
        }
        var t = BehaviourScore(capacity: 64, seed: 2)
        // A bot that writes the home page into every Referer, on long-tail articles, no assets.
        let bot = browse((0..<6).map { ("/article/\($0)", "https://example.org/") }, client: IPAddress("203.0.113.5")!, table: &t)
        #expect(bot.suspect)
        // A reader whose assets are cached, each page reached from the one before.
        var steps: [(target: String, referer: String?)] = [("/", nil)]
        for i in 0..<5 { steps.append(("/article/\(i)", "https://example.org" + steps.last!.target)) }
        let reader = browse(steps, client: IPAddress("198.51.100.7")!, table: &t)
        #expect(reader.own != nil && !reader.suspect)
        // The chain hashes path and query; a referrer without a path names the home page.
        #expect(PageChain.of(target: "/", referer: "https://example.org", host: "example.org").from == PageChain.of(target: "/", referer: nil, host: nil).page)
        #expect(PageChain.of(target: "/a?q=1", referer: "https://example.org/a?q=1#top", host: "example.org").from == PageChain.of(target: "/a?q=1", referer: nil, host: nil).page)
        #expect(PageChain.of(target: "/", referer: "https://evil.example/", host: "example.org").from == nil)
    }

    @Test func groupsForgetTheirPastWithinSeconds() {
        var t = BehaviourScore(capacity: 1024, seed: 9)
        for i in 0..<40 { t.observe(.page(referred: false), client: Self.bot(i), clearance: nil, fingerprint: 7, now: 0) }
        #expect(t.standing(client: Self.bot(100), clearance: nil, fingerprint: 7, now: 0).suspect)
        // The same fingerprint, a minute later, used by people who load assets.
        let later = 60 * Self.s
        for i in 0..<10 {
            t.observe(.page(referred: false), client: Self.bot(200 + i), clearance: nil, fingerprint: 7, now: later)
            t.observe(.asset, client: Self.bot(200 + i), clearance: nil, fingerprint: 7, now: later)
        }
        #expect(!t.standing(client: Self.bot(300), clearance: nil, fingerprint: 7, now: later).suspect)
    }

    @Test func theTablesAreBoundedAndEvictTheLeastRecentlySeen() {
        var t = BehaviourScore(capacity: 16, subnetCapacity: 16, fingerprintCapacity: 16, seed: 7)
        for i in 0..<1000 {
            let k = IPAddress(high: 1, low: UInt64(i))
            for _ in 0..<5 { t.observe(.page(referred: false), client: k, clearance: nil, fingerprint: UInt64(i), now: Int64(i)) }
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
        #expect(RequestKind.classify(path: "/news", query: nil, referer: "https://EXAMPLE.org", host: "example.org") == .page(referred: true))
        #expect(RequestKind.classify(path: "/news", query: nil, referer: "https://example.org.evil/", host: "example.org") == .page(referred: false))
        #expect(RequestKind.classify(path: "/news", query: nil, referer: "example.org", host: "example.org") == .page(referred: false))
        #expect(RequestKind.classify(path: "/news", query: nil, referer: "http://example.org:8080/", host: "example.org:8080") == .page(referred: true))
        #expect(RequestKind.classify(path: "/search", query: "q=tax+deadline", referer: nil, host: "example.org") == .search(referred: false))
        #expect(RequestKind.classify(path: "/Site-Search/x", query: "term=1", referer: nil, host: "example.org") == .search(referred: false))
        #expect(RequestKind.classify(path: "/", query: "s=abc", referer: nil, host: "example.org") == .search(referred: false))
        #expect(RequestKind.classify(path: "/", query: "page=2&q=abc", referer: nil, host: "example.org") == .search(referred: false))
        #expect(RequestKind.classify(path: "/", query: "page=2", referer: nil, host: "example.org") == .page(referred: false))
        #expect(RequestKind.classify(path: "/api/status", query: nil, referer: nil, host: "example.org") == .other)
        #expect(RequestKind.classify(path: "/sitemap.xml", query: nil, referer: nil, host: "example.org") == .other)
    }

    @Test func oneBrowserHasOneFingerprintForItsPagesAndItsAssetsAnotherToolAnother() {
        let page = HTTPHeaders([
            ("Host", "example.org"), ("User-Agent", "Mozilla/5.0 Firefox/140.0"), ("Accept", "text/html"), ("Accept-Language", "de"),
            ("Accept-Encoding", "gzip, br"), ("Upgrade-Insecure-Requests", "1"), ("Sec-Fetch-Dest", "document"), ("Cookie", "a=1"),
        ])
        let asset = HTTPHeaders([
            ("Host", "example.org"), ("User-Agent", "Mozilla/5.0 Firefox/140.0"), ("Accept", "text/css"), ("Accept-Language", "de"),
            ("Accept-Encoding", "gzip, br"), ("Sec-Fetch-Dest", "style"), ("Referer", "https://example.org/"),
        ])
        let tool = HTTPHeaders([("Host", "example.org"), ("User-Agent", "Mozilla/5.0 Firefox/140.0")])
        #expect(RequestFingerprint.of(page, httpMajor: 1, ja4: nil) == RequestFingerprint.of(asset, httpMajor: 1, ja4: nil))
        #expect(RequestFingerprint.of(page, httpMajor: 1, ja4: nil) != RequestFingerprint.of(tool, httpMajor: 1, ja4: nil))
        #expect(RequestFingerprint.of(page, httpMajor: 1, ja4: nil) != RequestFingerprint.of(page, httpMajor: 2, ja4: nil))
        #expect(RequestFingerprint.of(page, httpMajor: 1, ja4: "t13d1516h2_a_b") != RequestFingerprint.of(page, httpMajor: 1, ja4: "t13d1517h2_a_b"))
    }
}

/// The set-associative table every guard's fixed-size table is built on.
@Suite struct SetAssociativeTableTests {
    @Test func keysFindTheirSlotsAndAFullSetEvictsTheLowestRank() {
        var t = SetAssociativeTable<Int>(capacity: 4, seed: 1, empty: 0)
        #expect(t.capacity == 4)
        for i in 0..<4 {
            let (slot, inserted) = t.slot(for: IPAddress(high: 0, low: UInt64(i)), rank: { $0 }, fresh: { 10 + i })
            #expect(inserted && t[slot] == 10 + i)
        }
        #expect(t.count == 4)
        let (again, inserted) = t.slot(for: IPAddress(high: 0, low: 2), rank: { $0 }, fresh: { 0 })
        #expect(!inserted && t[again] == 12)
        // One set of four: the fifth key takes the slot ranked lowest (value 10, key 0).
        _ = t.slot(for: IPAddress(high: 0, low: 9), rank: { $0 }, fresh: { 99 })
        #expect(t.find(IPAddress(high: 0, low: 0)) == nil && t.find(IPAddress(high: 0, low: 9)) != nil && t.count == 4)
        t.remove(IPAddress(high: 0, low: 9))
        #expect(t.find(IPAddress(high: 0, low: 9)) == nil && t.count == 3)
    }
}

/// A human-rate bot flood seen by its behaviour is an attack signal for the mode controller.
@Suite struct BehaviourSignalTests {
    static func second(requests: Int, suspects: Int) -> TrafficSecond {
        var s = TrafficSecond()
        s.requests = requests
        s.suspects = suspects
        // Cacheable: a handful of targets, so only the behaviour signal can speak.
        for i in 0..<5 { s.targets.add(hash: mix64(UInt64(i) &+ 0x5EED)) }
        return s
    }

    @Test func pageViewsFromBotLikeClientsRaiseTheSiteToUnderAttackAPeoplesSurgeDoesNot() {
        var bots = ModeController(config: DetectionConfig())
        var people = ModeController(config: DetectionConfig())
        for t in 0..<30 {
            _ = bots.observe(Self.second(requests: 100, suspects: 0), at: Int64(t))
            _ = people.observe(Self.second(requests: 100, suspects: 0), at: Int64(t))
        }
        var change: ModeChange?
        for t in 30..<33 where change == nil { change = bots.observe(Self.second(requests: 2000, suspects: 1800), at: Int64(t)) }
        #expect(bots.mode == .underAttack)
        #expect(change?.reason.contains("load no assets") == true)
        for t in 30..<33 { _ = people.observe(Self.second(requests: 2000, suspects: 10), at: Int64(t)) }
        #expect(people.mode == .elevated)
    }
}
