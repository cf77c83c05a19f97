import NIOCore
import NIOHTTP1

/// Per-site cache settings.
public struct CacheConfig: Hashable, Sendable {
    /// False turns the cache off for the site.
    public var enabled = true
    /// Freshness given to HTML responses that state none (no max-age, s-maxage or Expires); `0`
    /// caches only what the origin marks cacheable.
    public var microTTL: TimeAmount = .seconds(1)
    /// How long past freshness a copy may still be served when the origin is down, slow, or over
    /// its cap (stale-if-error), or while one request refreshes it (stale-while-revalidate).
    public var staleFor: TimeAmount = .seconds(60)
    /// Memory for cached bodies and headers, bytes, for the whole gateway (split over event loops).
    public var maxBytes = 64 * 1024 * 1024
    /// Largest response kept, bytes.
    public var maxObjectBytes = 1024 * 1024
    /// Paths whose query string is left out of the cache key (exact, or a prefix ending in `*`),
    /// so `/?x=random` floods hit the cache.
    public var dropQuery: [String] = ["/"]
    /// Query parameters that stay in the key on `dropQuery` paths (the ones that select content,
    /// such as `page` or `lang`); every other parameter there is dropped.
    public var keepParams: [String] = []
    /// Also cache for requests that carry cookies (only when the origin's pages do not depend on them).
    public var withCookies = false

    /// The documented defaults.
    public init() {}
}

/// One cached response.
public struct CachedResponse: Sendable {
    /// Status of the origin's response.
    public var status: HTTPResponseStatus
    /// Its headers, hop-by-hop ones already removed.
    public var headers: HTTPHeaders
    /// The whole body.
    public var body: ByteBuffer
    /// When it was stored.
    public var storedAt: NIODeadline
    /// Until when it is fresh.
    public var freshUntil: NIODeadline
    /// Until when it may be served stale.
    public var staleUntil: NIODeadline
    var lastUsed: UInt64 = 0

    /// A cached response.
    public init(status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer, storedAt: NIODeadline, freshUntil: NIODeadline, staleUntil: NIODeadline) {
        self.status = status
        self.headers = headers
        self.body = body
        self.storedAt = storedAt
        self.freshUntil = freshUntil
        self.staleUntil = staleUntil
    }

    /// Bytes this entry accounts for.
    var cost: Int { body.readableBytes + headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 } + 128 }
}

/// Cache decisions that need no storage: which requests may be served from the cache, which
/// responses may be stored and for how long, and the key.
public enum CachePolicy {
    /// The cache key for a request, or nil when the request must not use the cache.
    public static func key(method: HTTPMethod, target: String, host: String, headers: HTTPHeaders, config: CacheConfig) -> String? {
        guard config.enabled, method == .GET || method == .HEAD else { return nil }
        if headers.contains(name: "authorization") { return nil }
        if !config.withCookies, headers.contains(name: "cookie") { return nil }
        var path = Substring(target)
        var query: Substring = ""
        if let q = target.firstIndex(of: "?") {
            path = target[..<q]
            query = target[q...]
        }
        if !query.isEmpty, dropsQuery(path: path, patterns: config.dropQuery) {
            query = keptParams(query.dropFirst(), keep: config.keepParams)
        }
        // HEAD and GET share an entry: a HEAD is answered from a stored GET and vice versa is not
        // stored (HEAD responses have no body), see ``ttl(status:headers:method:config:)``.
        // Responses may vary on Accept-Encoding: clients that accept different codings get
        // different entries, so nobody is sent a coding they did not ask for.
        return "\(host.lowercased())\(path)\(query)|\(encodingClass(headers))"
    }

    /// A coarse class of the codings a client accepts ("bgd" letters for br, gzip, deflate).
    static func encodingClass(_ headers: HTTPHeaders) -> String {
        guard let accept = headers.first(name: "accept-encoding")?.lowercased(), !accept.isEmpty else { return "" }
        var c = ""
        if accept.contains("br") { c += "b" }
        if accept.contains("gzip") { c += "g" }
        if accept.contains("deflate") { c += "d" }
        return c
    }

    /// `?a=1&b=2` reduced to the parameters in `keep`, in their order; "" when none is left.
    static func keptParams(_ query: Substring, keep: [String]) -> Substring {
        guard !keep.isEmpty else { return "" }
        let kept = query.split(separator: "&").filter { pair in
            let name = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]
            return keep.contains { name == $0 }
        }
        return kept.isEmpty ? "" : Substring("?" + kept.joined(separator: "&"))
    }

    static func dropsQuery(path: Substring, patterns: [String]) -> Bool {
        for p in patterns {
            if p.hasSuffix("*") {
                if path.hasPrefix(p.dropLast()) { return true }
            } else if path == p {
                return true
            }
        }
        return false
    }

    /// How long a response may be stored fresh, or nil when it must not be stored.
    public static func ttl(status: HTTPResponseStatus, headers: HTTPHeaders, method: HTTPMethod, config: CacheConfig) -> TimeAmount? {
        guard method == .GET else { return nil }
        switch status.code {
        case 200, 203, 301, 404, 410: break
        default: return nil
        }
        if headers.contains(name: "set-cookie") { return nil }
        for vary in headers[canonicalForm: "vary"] where !vary.equalsASCIICaseInsensitive("accept-encoding") {
            return nil
        }
        var maxAge: Int64? = nil
        var sMaxAge: Int64? = nil
        for directive in headers[canonicalForm: "cache-control"] {
            let d = directive.lowercased()
            if d == "no-store" || d == "private" || d == "no-cache" || d.hasPrefix("no-cache=") || d.hasPrefix("private=") {
                return nil
            }
            if d.hasPrefix("s-maxage=") { sMaxAge = Int64(d.dropFirst(9)) }
            if d.hasPrefix("max-age=") { maxAge = Int64(d.dropFirst(8)) }
        }
        if let seconds = sMaxAge ?? maxAge {
            return seconds > 0 ? .seconds(min(seconds, 86_400)) : nil
        }
        if headers.contains(name: "expires") {
            // An Expires date without max-age: honour "already expired" conservatively (do not store).
            return nil
        }
        // Without stated freshness only anonymous HTML pages get the micro-TTL: API answers and
        // other dynamic content are never cached on a guess.
        guard let type = headers.first(name: "content-type"), type.lowercased().hasPrefix("text/html"), config.microTTL > .zero else {
            return nil
        }
        return config.microTTL
    }
}

/// The response store of one site on one event loop: bounded by bytes, evicting approximately
/// least-recently-used entries (the oldest of a few sampled), with request coalescing bookkeeping.
/// Confined to its loop by its owner.
public struct MicroCacheStore: Sendable {
    private var entries: [String: CachedResponse] = [:]
    private var keys: [String] = []
    private var keyIndex: [String: Int] = [:]
    private var bytes = 0
    private var clock: UInt64 = 0
    /// Byte budget.
    public let maxBytes: Int

    /// An empty store with a byte budget.
    public init(maxBytes: Int) { self.maxBytes = maxBytes }

    /// Entries stored.
    public var count: Int { entries.count }
    /// Bytes accounted for.
    public var usedBytes: Int { bytes }

    /// The entry for `key`, fresh or stale-but-servable at `now`.
    public mutating func lookup(_ key: String, now: NIODeadline) -> (CachedResponse, fresh: Bool)? {
        guard var e = entries[key] else { return nil }
        if now >= e.staleUntil {
            remove(key)
            return nil
        }
        clock &+= 1
        e.lastUsed = clock
        entries[key] = e
        return (e, now < e.freshUntil)
    }

    /// Stores an entry, evicting others to stay within the budget. Entries larger than a quarter of
    /// the budget are not stored.
    public mutating func store(_ key: String, _ response: CachedResponse) {
        var e = response
        guard e.cost <= maxBytes / 4 else { return }
        remove(key)
        clock &+= 1
        e.lastUsed = clock
        while bytes + e.cost > maxBytes, !keys.isEmpty { evictOne() }
        entries[key] = e
        keyIndex[key] = keys.count
        keys.append(key)
        bytes += e.cost
    }

    private mutating func remove(_ key: String) {
        guard let e = entries.removeValue(forKey: key), let i = keyIndex.removeValue(forKey: key) else { return }
        bytes -= e.cost
        let last = keys.removeLast()
        if i < keys.count {
            keys[i] = last
            keyIndex[last] = i
        }
    }

    private mutating func evictOne() {
        // Approximate LRU: the least recently used of five random entries.
        var victim = keys[Int.random(in: 0..<keys.count)]
        for _ in 0..<4 {
            let k = keys[Int.random(in: 0..<keys.count)]
            if entries[k]!.lastUsed < entries[victim]!.lastUsed { victim = k }
        }
        remove(victim)
    }
}
