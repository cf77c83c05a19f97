/// What one request was, for the behaviour score: a page, a sub-resource of a page (stylesheet,
/// script, image, font), an uncacheable search, or something else (API, feed, form post).
public enum RequestKind: Sendable, Equatable {
    case page(referred: Bool)
    case asset
    case search(referred: Bool)
    case other

    /// File endings and folders of sub-resources a page names.
    static let assetEndings = [".css", ".js", ".mjs", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".svg", ".ico", ".woff", ".woff2", ".ttf"]
    static let assetFolders = ["/static/", "/assets/", "/images/", "/img/", "/css/", "/js/", "/fonts/", "/media/"]

    /// Classifies a GET: `path` is the normalised path, `query` whether it had a query string,
    /// `referer` the `Referer` header and `host` the request's host (a referrer from the same host
    /// is a step in a browsing chain).
    public static func classify(path: Substring, query: Substring?, referer: String?, host: String?) -> RequestKind {
        let lower = path.utf8.count <= 256 ? path.lowercased() : String(path.prefix(256)).lowercased()
        if assetEndings.contains(where: { lower.hasSuffix($0) }) || assetFolders.contains(where: { lower.hasPrefix($0) }) { return .asset }
        if lower.hasPrefix("/api/") || lower.hasPrefix("/.") || lower.hasSuffix(".xml") || lower.hasSuffix(".json") { return .other }
        let referred = referer.map { r in host.map { h in Self.sameHost(r, h) } ?? false } ?? false
        if let query, lower.contains("search") || query.hasPrefix("q=") || query.hasPrefix("s=") || query.contains("&q=") {
            return .search(referred: referred)
        }
        return .page(referred: referred)
    }

    /// True when the referrer URL names `host` (`https://host/...`, `http://host:8080/...`).
    static func sameHost(_ referer: String, _ host: String) -> Bool {
        guard let scheme = referer.range(of: "://") else { return false }
        let rest = referer[scheme.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let name = authority.split(separator: ":", maxSplits: 1).first ?? authority
        let requested = host.split(separator: ":", maxSplits: 1).first ?? Substring(host)
        return name.lowercased() == requested.lowercased()
    }
}

/// Behaviour, not only rate: how a holder of one clearance has browsed, in a fixed-size table
/// keyed by the clearance (so by one person's browser), with time passed in (nanoseconds).
///
/// People load the sub-resources of the pages they get (or arrive from a page of the site, a
/// same-host `Referer`, when their browser cached those), and read more than they search.
/// Cookie-keeping bots at a person's rate fetch pages, long-tail articles and random searches
/// with neither assets nor a browsing chain. The score (0...100, 50 unknown) weighs:
///
/// - sub-resources: after ``minimumPages`` pages, none at all costs 30; one per two pages or more earns 20;
/// - referrer chain: after ``minimumPages`` pages, under a third of pages and searches arriving
///   from the site costs 20; more than two thirds earns 15;
/// - searches: more than half of the pages being uncacheable searches costs 20;
/// - history: a clearance in use for over ten minutes that is not a suspect earns 10.
///
/// Below ``suspectBelow`` the clearance is a suspect: under attack its holder is challenged
/// harder (proof of work for a cookie-check clearance; a proof-of-work or wait clearance is
/// revoked and the no-JavaScript wait is longer).
public struct BehaviourScore: Sendable {
    struct Slot {
        var high: UInt64 = 0
        var low: UInt64 = 0
        var pages: UInt16 = 0
        var assets: UInt16 = 0
        var referred: UInt16 = 0
        var searches: UInt16 = 0
        var firstSeen: Int64 = 0
        var lastSeen: Int64 = 0
        var used = false
    }

    /// Pages (and searches) seen before assets and referrers are judged.
    public static let minimumPages: UInt16 = 4
    /// Scores below this mark a suspect.
    public static let suspectBelow = 35

    private var slots: [Slot]
    private let index: SetAssociativeIndex

    /// A table of at least `capacity` clearances.
    public init(capacity: Int = 65_536, seed: UInt64 = UInt64.random(in: 0...UInt64.max)) {
        index = SetAssociativeIndex(capacity: capacity, seed: seed)
        slots = [Slot](repeating: Slot(), count: index.slotCount)
    }

    /// Records one request of the clearance `key` and returns its score after it.
    @discardableResult
    public mutating func observe(_ key: IPAddress, kind: RequestKind, now: Int64) -> Int {
        let i = slot(for: key, now: now)
        switch kind {
        case .page(let referred):
            if slots[i].pages < .max { slots[i].pages += 1 }
            if referred, slots[i].referred < .max { slots[i].referred += 1 }
        case .search(let referred):
            if slots[i].pages < .max { slots[i].pages += 1 }
            if slots[i].searches < .max { slots[i].searches += 1 }
            if referred, slots[i].referred < .max { slots[i].referred += 1 }
        case .asset:
            if slots[i].assets < .max { slots[i].assets += 1 }
        case .other:
            break
        }
        slots[i].lastSeen = now
        return Self.score(slots[i], now: now)
    }

    /// The clearance's score now (50 when it was never seen or was evicted).
    public func score(_ key: IPAddress, now: Int64) -> Int {
        let base = index.base(for: key)
        for i in base..<(base + SetAssociativeIndex.ways) where slots[i].used && slots[i].high == key.high && slots[i].low == key.low {
            return Self.score(slots[i], now: now)
        }
        return 50
    }

    static func score(_ s: Slot, now: Int64) -> Int {
        var score = 50
        if s.pages >= minimumPages {
            if s.assets == 0 {
                score -= 30
            } else if Int(s.assets) * 2 >= Int(s.pages) {
                score += 20
            }
            if Int(s.referred) * 3 < Int(s.pages) {
                score -= 20
            } else if Int(s.referred) * 3 > Int(s.pages) * 2 {
                score += 15
            }
        }
        if s.pages >= minimumPages, Int(s.searches) * 2 > Int(s.pages) { score -= 20 }
        if score >= suspectBelow, now - s.firstSeen > 600_000_000_000 { score += 10 }
        return max(0, min(100, score))
    }

    private mutating func slot(for key: IPAddress, now: Int64) -> Int {
        let base = index.base(for: key)
        var victim = base
        var oldest = Int64.max
        for i in base..<(base + SetAssociativeIndex.ways) {
            if slots[i].used, slots[i].high == key.high, slots[i].low == key.low { return i }
            let age = slots[i].used ? slots[i].lastSeen : Int64.min
            if age < oldest {
                oldest = age
                victim = i
            }
        }
        slots[victim] = Slot(high: key.high, low: key.low, firstSeen: now, lastSeen: now, used: true)
        return victim
    }
}
