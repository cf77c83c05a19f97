/// What one request was, for the behaviour score: a page, a sub-resource of a page (stylesheet,
/// script, image, font), an uncacheable search, or something else (API, feed, form post).
public enum RequestKind: Sendable, Equatable {
    case page(referred: Bool)
    case asset
    case search(referred: Bool)
    case other

    /// True for pages and searches (what a person reads, and what a page-flooding bot asks for).
    public var isPage: Bool {
        switch self {
        case .page, .search: return true
        case .asset, .other: return false
        }
    }

    /// File endings and folders of sub-resources a page names.
    static let assetEndings = [".css", ".js", ".mjs", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".svg", ".ico", ".woff", ".woff2", ".ttf"]
    static let assetFolders = ["/static/", "/assets/", "/images/", "/img/", "/css/", "/js/", "/fonts/", "/media/"]

    /// Classifies a GET: `path` is the normalised path, `query` the query string (without `?`) if
    /// any, `referer` the `Referer` header and `host` the request's host (a referrer from the same
    /// host is a step in a browsing chain). Compares bytes, case-insensitively: no allocation.
    public static func classify(path: Substring, query: Substring?, referer: String?, host: String?) -> RequestKind {
        let p = path.utf8
        if assetEndings.contains(where: { ASCII.hasSuffix(p, $0) }) || assetFolders.contains(where: { ASCII.hasPrefix(p, $0) }) { return .asset }
        if ASCII.hasPrefix(p, "/api/") || ASCII.hasPrefix(p, "/.") || ASCII.hasSuffix(p, ".xml") || ASCII.hasSuffix(p, ".json") { return .other }
        let referred = referer.map { r in host.map { h in Self.sameHost(r, h) } ?? false } ?? false
        if let query, ASCII.contains(p, "search") || query.hasPrefix("q=") || query.hasPrefix("s=") || query.utf8.contains("&q=".utf8) {
            return .search(referred: referred)
        }
        return .page(referred: referred)
    }

    /// True when the referrer URL names `host` (`https://host/...`, `http://host:8080/...`).
    static func sameHost(_ referer: String, _ host: String) -> Bool {
        let r = referer.utf8
        guard let colon = r.firstIndex(of: UInt8(ascii: ":")), r[colon...].starts(with: "://".utf8) else { return false }
        let rest = r[r.index(colon, offsetBy: 3)...]
        let authority = rest.prefix { $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }
        let name = authority.prefix { $0 != UInt8(ascii: ":") }
        let requested = host.utf8.prefix { $0 != UInt8(ascii: ":") }
        return ASCII.equalFolded(name, requested)
    }
}

/// A step of a browsing chain: the page asked for and the page its same-host `Referer` names
/// (32-bit hashes of path and query). A referrer counts for a client only when it names one of the
/// last two pages that client fetched: a bot that writes the site's address into every `Referer`
/// gains nothing by it.
public struct PageChain: Sendable, Equatable {
    /// The requested target's hash (never 0).
    public var page: UInt32
    /// The hash of the target the same-host referrer names, nil without one.
    public var from: UInt32?

    public init(page: UInt32, from: UInt32?) {
        self.page = page
        self.from = from
    }

    /// The chain step of a request for `target` (path and query) with `referer`, for `host`.
    public static func of(target: Substring, referer: String?, host: String?) -> PageChain {
        var from: UInt32?
        if let referer, let host, RequestKind.sameHost(referer, host) {
            let r = referer.utf8
            let rest = r[r.index(r.firstIndex(of: UInt8(ascii: ":"))!, offsetBy: 3)...]
            let path = rest.drop { $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }
            let upToFragment = path.prefix { $0 != UInt8(ascii: "#") }
            from = hash(upToFragment.isEmpty ? Substring("/").utf8[...] : upToFragment)
        }
        return PageChain(page: hash(target.utf8[...]), from: from)
    }

    /// FNV-1a of the bytes, a leading `?` read as `/?`, never 0.
    static func hash<C: Collection<UInt8>>(_ bytes: C) -> UInt32 {
        var h: UInt32 = 0x811C_9DC5
        if bytes.first == UInt8(ascii: "?") { h = (h ^ UInt32(UInt8(ascii: "/"))) &* 0x0100_0193 }
        for b in bytes { h = (h ^ UInt32(b)) &* 0x0100_0193 }
        return h == 0 ? 1 : h
    }
}

/// Case-insensitive ASCII comparisons over UTF-8 bytes, without making lower-case copies.
enum ASCII {
    @inline(__always)
    static func fold(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }

    static func equalFolded<A: Collection<UInt8>, B: Collection<UInt8>>(_ a: A, _ b: B) -> Bool {
        guard a.count == b.count else { return false }
        return zip(a, b).allSatisfy { fold($0) == fold($1) }
    }

    /// `text` ends with `suffix` (lower case).
    static func hasSuffix(_ text: Substring.UTF8View, _ suffix: String) -> Bool {
        let n = suffix.utf8.count
        guard text.count >= n else { return false }
        return equalFolded(text.suffix(n), suffix.utf8)
    }

    /// `text` starts with `prefix` (lower case).
    static func hasPrefix(_ text: Substring.UTF8View, _ prefix: String) -> Bool {
        let n = prefix.utf8.count
        guard text.count >= n else { return false }
        return equalFolded(text.prefix(n), prefix.utf8)
    }

    /// `text` contains `needle` (lower case).
    static func contains(_ text: Substring.UTF8View, _ needle: String) -> Bool {
        let n = needle.utf8
        guard let first = n.first, text.count >= n.count else { return false }
        var i = text.startIndex
        let last = text.index(text.endIndex, offsetBy: -n.count)
        while true {
            if fold(text[i]) == first, equalFolded(text[i...].prefix(n.count), n) { return true }
            if i == last { return false }
            i = text.index(after: i)
        }
    }
}

/// How a client, or a group of clients, has browsed: counts of pages, sub-resources, pages reached
/// from the site and searches.
struct Browsing: Sendable {
    var pages: UInt32 = 0
    var assets: UInt32 = 0
    var referred: UInt32 = 0
    var searches: UInt32 = 0
    /// Nanoseconds of the injected clock.
    var firstSeen: Int64 = 0
    var lastSeen: Int64 = 0
    /// Start of the current decay window (groups).
    var window: Int64 = 0
    /// Hashes of the last two pages fetched (clients; 0: none).
    var lastPage: UInt32 = 0
    var previousPage: UInt32 = 0

    /// True when a referrer naming `from` continues this client's chain: it names one of its last
    /// two pages, or the client has fetched no page yet (its first page may come from a link).
    func continues(_ from: UInt32) -> Bool { lastPage == 0 || from == lastPage || from == previousPage }

    /// Remembers the page fetched.
    mutating func visit(_ page: UInt32) {
        guard page != lastPage else { return }
        previousPage = lastPage
        lastPage = page
    }

    mutating func add(_ kind: RequestKind) {
        switch kind {
        case .page(let referred):
            pages &+= 1
            if referred { self.referred &+= 1 }
        case .search(let referred):
            pages &+= 1
            searches &+= 1
            if referred { self.referred &+= 1 }
        case .asset:
            assets &+= 1
        case .other:
            break
        }
    }

    /// Halves the counts `times` times: old behaviour weighs less than new.
    mutating func decay(_ times: Int) {
        let s = UInt32(min(times, 31))
        pages >>= s
        assets >>= s
        referred >>= s
        searches >>= s
    }

    /// The score (0...100) the counts earn, nil with fewer than `minimum` pages.
    ///
    /// - sub-resources: fewer than one per eight pages costs 30; one per two pages or more earns 20;
    /// - referrer chain: under a third of pages arriving from the site costs 10; more than two
    ///   thirds earns 15;
    /// - searches: more than half of the pages being uncacheable searches costs 20.
    func score(minimum: UInt32) -> Int? {
        guard pages >= minimum, pages > 0 else { return nil }
        let pages = Int(pages), assets = Int(assets), referred = Int(referred), searches = Int(searches)
        var score = 50
        if assets * 8 < pages {
            score -= 30
        } else if assets * 2 >= pages {
            score += 20
        }
        if referred * 3 < pages {
            score -= 10
        } else if referred * 3 > pages * 2 {
            score += 15
        }
        if searches * 2 > pages { score -= 20 }
        return max(0, min(100, score))
    }
}

/// Behaviour, not only rate: how clients browse, per client and per group, in fixed-size tables
/// (one set per site and event loop), with time passed in (nanoseconds).
///
/// People load the sub-resources of the pages they get (or arrive from a page of the site, a
/// same-host `Referer`, when their browser cached those), and read more than they search.
/// Cookie-keeping bots at a person's rate fetch pages, long-tail articles and random searches
/// with neither assets nor a browsing chain. ``Browsing/score(minimum:)`` turns the counts into a
/// score (0...100, 50 unknown).
///
/// Three tables:
/// - **clients**, keyed by the clearance when the request holds one (one person's browser), else
///   by the address: the client's own evidence, which decides once it has ``minimumPages`` pages.
///   A clearance with fewer pages falls back to its address's evidence, if that has enough.
///   A clearance in use for ten minutes that is not a suspect earns 10.
/// - **subnets** (IPv4 /24, IPv6 /64) and **fingerprints** (``RequestFingerprint``): the groups.
///   Counts halve every ``groupWindow``, so a group's score is its last few seconds' behaviour.
///   A client without enough evidence of its own inherits the lower of its groups' scores (each
///   once the group has ``groupMinimumPages`` pages): a botnet of thousands of addresses sharing
///   one fingerprint is known within its first few dozen pages, not after four pages per address.
///
/// Below ``suspectBelow`` a client is a suspect; at ``trustedFrom`` or more by its own evidence it is
/// trusted (under a site-wide proof-of-work tier, its cookie clearance still passes). Memory is fixed
/// whatever the number of addresses: 72 bytes a slot, 32,768 + 8,192 + 1,024 slots by default.
public struct BehaviourScore: Sendable {
    /// What the tables say about one client.
    public struct Standing: Sendable, Equatable {
        /// The client's own score, once it has shown ``BehaviourScore/minimumPages`` pages.
        public var own: Int?
        /// The lower of its groups' scores, for groups with ``BehaviourScore/groupMinimumPages`` pages.
        public var group: Int?

        public init(own: Int?, group: Int?) {
            self.own = own
            self.group = group
        }

        /// Own evidence wins; without it the groups speak; without either, 50.
        public var score: Int { own ?? group ?? 50 }
        /// Challenged harder under attack.
        public var suspect: Bool { score < BehaviourScore.suspectBelow }
        /// A suspect by its own pages (not only by its groups'): a clearance earned with work or a
        /// wait is revoked only then.
        public var ownSuspect: Bool { (own ?? 50) < BehaviourScore.suspectBelow }
        /// Browses like a person by its own pages.
        public var trusted: Bool { (own ?? 0) >= BehaviourScore.trustedFrom }
    }

    /// Pages (and searches) of one client seen before its assets and referrers are judged.
    public static let minimumPages: UInt32 = 4
    /// Pages of a group seen before it is judged.
    public static let groupMinimumPages: UInt32 = 8
    /// Groups' counts halve every this many nanoseconds (10 s).
    public static let groupWindow: Int64 = 10_000_000_000
    /// A client's counts halve once it has this many pages (the recent past weighs most).
    static let clientHalving: UInt32 = 512
    /// Scores below this mark a suspect.
    public static let suspectBelow = 35
    /// Own scores from this on mark a client that browses like a person.
    public static let trustedFrom = 60
    /// A client of ten minutes' standing that is not a suspect earns this.
    static let historyBonus = 10
    static let historyAge: Int64 = 600_000_000_000
    /// Evidence keeps a slot this much longer than a one-off key when the set is full.
    static let evidenceRetention: Int64 = 60_000_000_000

    private var clients: SetAssociativeTable<Browsing>
    private var subnets: SetAssociativeTable<Browsing>
    private var fingerprints: SetAssociativeTable<Browsing>

    /// Tables of at least `capacity` clients, `subnetCapacity` subnets and `fingerprintCapacity`
    /// fingerprints.
    public init(
        capacity: Int = 32_768, subnetCapacity: Int = 8_192, fingerprintCapacity: Int = 1_024,
        seed: UInt64 = UInt64.random(in: 0...UInt64.max)
    ) {
        clients = SetAssociativeTable(capacity: capacity, seed: seed, empty: Browsing())
        subnets = SetAssociativeTable(capacity: subnetCapacity, seed: seed &+ 0x9E37_79B9, empty: Browsing())
        fingerprints = SetAssociativeTable(capacity: fingerprintCapacity, seed: seed &+ 0x7F4A_7C15, empty: Browsing())
    }

    /// The group key of a request fingerprint (``RequestFingerprint``).
    static func fingerprintKey(_ fingerprint: UInt64) -> IPAddress { IPAddress(high: 0xF1A6_E4B4_1A70_0000, low: fingerprint) }

    /// Records one request of `client` (its address), holding the clearance `clearance` (its key)
    /// if any, with request fingerprint `fingerprint`, and returns its standing after it.
    @discardableResult
    /// With `chain`, a same-host referrer counts only when it names one of the client's last two pages.
    public mutating func observe(
        _ kind: RequestKind, client: IPAddress, clearance: IPAddress?, fingerprint: UInt64, chain: PageChain? = nil, now: Int64
    ) -> Standing {
        var kind = kind
        let own = Self.record(&clients, clearance ?? client, &kind, chain: chain, now: now, window: 0)
        let subnet = Self.record(&subnets, client.defaultSubnet, &kind, chain: nil, now: now, window: Self.groupWindow)
        let group = Self.record(&fingerprints, Self.fingerprintKey(fingerprint), &kind, chain: nil, now: now, window: Self.groupWindow)
        var ownScore = Self.ownScore(clients[own], now: now)
        if ownScore == nil, clearance != nil, let i = clients.find(client) { ownScore = Self.ownScore(clients[i], now: now) }
        return Standing(own: ownScore, group: Self.lower(subnets[subnet].score(minimum: Self.groupMinimumPages), fingerprints[group].score(minimum: Self.groupMinimumPages)))
    }

    /// The standing of a client now, without recording anything.
    public func standing(client: IPAddress, clearance: IPAddress?, fingerprint: UInt64, now: Int64) -> Standing {
        var own = clients.find(clearance ?? client).flatMap { Self.ownScore(clients[$0], now: now) }
        if own == nil, clearance != nil { own = clients.find(client).flatMap { Self.ownScore(clients[$0], now: now) } }
        let subnet = subnets.find(client.defaultSubnet).flatMap { subnets[$0].score(minimum: Self.groupMinimumPages) }
        let group = fingerprints.find(Self.fingerprintKey(fingerprint)).flatMap { fingerprints[$0].score(minimum: Self.groupMinimumPages) }
        return Standing(own: own, group: Self.lower(subnet, group))
    }

    /// The own score of one key (a clearance or an address), 50 when it has too few pages or was
    /// never seen or was evicted.
    public func score(_ key: IPAddress, now: Int64) -> Int {
        clients.find(key).flatMap { Self.ownScore(clients[$0], now: now) } ?? 50
    }

    static func ownScore(_ b: Browsing, now: Int64) -> Int? {
        guard var score = b.score(minimum: minimumPages) else { return nil }
        if score >= suspectBelow, now - b.firstSeen > historyAge { score = min(100, score + historyBonus) }
        return score
    }

    private static func lower(_ a: Int?, _ b: Int?) -> Int? {
        guard let a else { return b }
        guard let b else { return a }
        return min(a, b)
    }

    /// Adds `kind` to `key`'s counts (taking a slot for it if need be) and returns the slot.
    /// `window` > 0 halves the counts once per window passed; 0 halves them at ``clientHalving`` pages.
    /// With `chain`, a referred page whose referrer does not continue the key's chain is recorded
    /// (and left in `kind`, for the groups) as not referred.
    private static func record(
        _ table: inout SetAssociativeTable<Browsing>, _ key: IPAddress, _ kind: inout RequestKind, chain: PageChain?, now: Int64, window: Int64
    ) -> Int {
        let minimum = window > 0 ? groupMinimumPages : minimumPages
        let retention = evidenceRetention
        let (i, _) = table.slot(
            for: key,
            rank: { b in b.lastSeen &+ (b.pages >= minimum ? retention : 0) },
            fresh: { Browsing(firstSeen: now, lastSeen: now, window: now) }
        )
        if window > 0 {
            let passed = Int64.saturatingDifference(now, table[i].window) / window
            if passed > 0 {
                table[i].decay(Int(min(passed, 31)))
                table[i].window = now
            }
        } else if table[i].pages >= clientHalving {
            table[i].decay(1)
        }
        if let chain, kind.isPage {
            let continues = chain.from.map { table[i].continues($0) } ?? false
            switch kind {
            case .page(referred: true) where !continues: kind = .page(referred: false)
            case .search(referred: true) where !continues: kind = .search(referred: false)
            default: break
            }
            table[i].visit(chain.page)
        }
        table[i].add(kind)
        table[i].lastSeen = now
        return i
    }
}
