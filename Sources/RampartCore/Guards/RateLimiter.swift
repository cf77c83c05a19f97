import NIOCore
import NIOHTTP1

/// Token buckets keyed by client address (or subnet) in a fixed-size table: memory never grows with
/// the number of distinct clients.
///
/// The table is set-associative: a key hashes (with a per-process random seed, so an attacker
/// cannot aim at one set) to a set of four slots. A key not present takes the slot in its set whose
/// bucket is fullest after refill, the one under the least pressure; heavy sources keep drained
/// buckets and so keep their slots, while a flood of one-off addresses only evicts other one-offs.
/// Time is passed in (nanoseconds of a monotonic clock), so it is tested by stepping numbers.
public struct TokenBucketTable: Sendable {
    struct Bucket: Sendable {
        var tokens: Double = 0
        var stamp: Int64 = 0
    }

    /// What the table decided for one request.
    public enum Decision: Equatable, Sendable {
        /// Within the limit.
        case allowed
        /// Over the limit; a token is expected after this many seconds.
        case limited(retryAfterSeconds: Int)
    }

    private var table: SetAssociativeTable<Bucket>
    /// Tokens added per nanosecond.
    public let ratePerNanosecond: Double
    /// Bucket size (the burst allowed on top of the rate).
    public let burst: Double

    /// Largest rate and burst a table works with (10^15 a second, 10^15 tokens): far above any
    /// configurable value, small enough that no sum or product of them leaves the finite doubles.
    static let ceiling = 1e15

    /// A table of at least `capacity` slots (rounded up to a power of two), refilling `ratePerSecond`
    /// tokens a second up to `burst`. Values out of range are clamped (a negative or NaN rate is 0,
    /// a burst below 1 is 1, both at most ``ceiling``), so no value makes a later decision trap.
    public init(capacity: Int, ratePerSecond: Double, burst: Double, seed: UInt64 = UInt64.random(in: 0...UInt64.max)) {
        self.table = SetAssociativeTable(capacity: capacity, seed: seed, empty: Bucket())
        self.ratePerNanosecond = Self.clamp(ratePerSecond, 0) / 1e9
        self.burst = Self.clamp(burst, 1)
    }

    /// `value` within `floor...ceiling`; NaN becomes `floor`.
    private static func clamp(_ value: Double, _ floor: Double) -> Double {
        value.isNaN ? floor : min(max(value, floor), ceiling)
    }

    /// Number of slots (the most keys tracked at once).
    public var capacity: Int { table.capacity }

    /// Takes one token for `key` at `now` (nanoseconds). A key not present takes the slot of its
    /// set whose bucket is fullest after refill.
    public mutating func take(_ key: IPAddress, now: Int64) -> Decision {
        let rate = ratePerNanosecond
        let burst = self.burst
        let (i, _) = table.slot(
            for: key, rank: { -Self.refill($0, now: now, rate: rate, burst: burst) }, fresh: { Bucket(tokens: burst, stamp: now) }
        )
        return consume(at: i, now: now)
    }

    private static func refill(_ bucket: Bucket, now: Int64, rate: Double, burst: Double) -> Double {
        let elapsed = Double(max(0, Int64.saturatingDifference(now, bucket.stamp)))
        return min(burst, bucket.tokens + elapsed * rate)
    }

    private mutating func consume(at i: Int, now: Int64) -> Decision {
        var tokens = Self.refill(table[i], now: now, rate: ratePerNanosecond, burst: burst)
        table[i].stamp = now
        if tokens >= 1 {
            tokens -= 1
            table[i].tokens = tokens
            return .allowed
        }
        table[i].tokens = tokens
        guard ratePerNanosecond > 0 else { return .limited(retryAfterSeconds: 60) }
        // A very slow rate makes this wait enormous: clamped to a day before it becomes an integer.
        let wait = (1 - tokens) / ratePerNanosecond / 1e9
        let seconds = min(wait.rounded(.up), Double(ValueBounds.maxRetryAfterSeconds))
        return .limited(retryAfterSeconds: max(1, Int(saturating: seconds)))
    }

    /// Slots in use (never above ``capacity``).
    public var trackedKeys: Int { table.count }
}

/// What a rate limit keys on.
public enum RateLimitKey: String, Sendable, Hashable, CaseIterable {
    /// The client address.
    case ip
    /// The client's subnet (IPv4 /24 and IPv6 /64 unless configured otherwise).
    case subnet
    /// The API key the request carries (`Authorization: Bearer KEY` or `X-API-Key: KEY`); requests
    /// without one are not covered by the rule.
    case apiKey = "api_key"
    /// The client's JA4 TLS fingerprint: every client built on one TLS stack shares one bucket, so a
    /// botnet spread over many addresses is limited as a group. Plain-HTTP requests are not covered.
    case ja4
}

extension IPAddress {
    /// A fixed-size bucket key for a text key (an API key, a TLS fingerprint), made of two
    /// independent 64-bit hashes so that the rate-limit tables keyed on addresses can hold it.
    public static func bucketKey(_ value: String) -> IPAddress {
        var a = Hasher()
        a.combine(0x5A17 as UInt16)
        a.combine(value)
        var b = Hasher()
        b.combine(0xC0DE as UInt16)
        b.combine(value)
        return IPAddress(high: UInt64(bitPattern: Int64(a.finalize())), low: UInt64(bitPattern: Int64(b.finalize())))
    }
}

/// The API key a request carries, and whether the site knows it.
public struct PresentedAPIKey: Sendable, Equatable {
    /// The key as sent.
    public var value: String
    /// True when the key is one of the site's configured `api_keys`.
    public var configured: Bool

    /// Finds a key in `Authorization: Bearer KEY` or `X-API-Key: KEY`.
    public static func find(in headers: HTTPHeaders, configured keys: Set<String>) -> PresentedAPIKey? {
        var value: String? = headers.first(name: "x-api-key")
        if value == nil, let auth = headers.first(name: "authorization"), auth.utf8.count > 7,
            auth.prefix(7).equalsASCIICaseInsensitive("bearer ")
        {
            value = String(auth.dropFirst(7)).trimmingCharacters()
        }
        guard let v = value, !v.isEmpty else { return nil }
        return PresentedAPIKey(value: v, configured: keys.contains(v))
    }

    /// A fixed-size bucket key for the key's value.
    public var bucketKey: IPAddress { IPAddress.bucketKey(value) }
}

/// What happens to a request over a limit.
public enum RateLimitAction: String, Sendable, Hashable, CaseIterable {
    /// 429 Too Many Requests with Retry-After.
    case reject
    /// Hold the request for a while, then 429: slows a client down at little cost to us.
    case tarpit
    /// Close the connection without an answer (for the worst offenders).
    case close
}

/// One configured rate limit.
public struct RateLimitRule: Sendable, Hashable {
    /// Name for logs and counters.
    public var name: String
    /// What the buckets are keyed on.
    public var key: RateLimitKey = .ip
    /// Sustained requests per second.
    public var ratePerSecond: Double
    /// Requests allowed in a burst above the rate.
    public var burst: Double
    /// Methods the rule applies to (upper case, e.g. `POST`); empty means all.
    public var methods: [String] = []
    /// Path prefix the rule applies to; nil means all paths.
    public var pathPrefix: String? = nil
    /// What to do over the limit.
    public var action: RateLimitAction = .reject
    /// Count and log, but do not enforce.
    public var shadow = false
    /// IPv4 prefix length for `subnet` keys.
    public var subnetV4 = 24
    /// IPv6 prefix length for `subnet` keys.
    public var subnetV6 = 64
    /// Keys tracked per event loop.
    public var tableCapacity = 65_536

    /// A rule with the given name, rate and burst, defaults elsewhere.
    public init(name: String, ratePerSecond: Double, burst: Double) {
        self.name = name
        self.ratePerSecond = ratePerSecond
        self.burst = burst
    }

    /// The rules a site gets when it configures none: per address and per subnet.
    public static let defaults: [RateLimitRule] = {
        let ip = RateLimitRule(name: "per-ip", ratePerSecond: 20, burst: 100)
        var subnet = RateLimitRule(name: "per-subnet", ratePerSecond: 200, burst: 1000)
        subnet.key = .subnet
        return [ip, subnet]
    }()

    /// True when the rule covers a request with this method and target.
    public func matches(method: HTTPMethod, target: String) -> Bool {
        if !methods.isEmpty, !methods.contains(method.rawValue) { return false }
        if let prefix = pathPrefix, !target.hasPrefix(prefix) { return false }
        return true
    }

    /// The bucket key for a request, or nil when the rule does not cover it: `api_key` rules cover
    /// only requests with a key; `ip` and `subnet` rules do not cover requests with a configured key
    /// (API clients behind one address are limited per key instead).
    public func bucketKey(for client: IPAddress, apiKey: PresentedAPIKey?, fingerprint: String? = nil) -> IPAddress? {
        switch key {
        case .ja4: return fingerprint.map(IPAddress.bucketKey)
        case .ip: return apiKey?.configured == true ? nil : client
        case .subnet: return apiKey?.configured == true ? nil : client.masked(prefix: client.isIPv4 ? subnetV4 : subnetV6)
        case .apiKey: return apiKey?.bucketKey
        }
    }
}

/// The rate limits of one site on one event loop: each rule's table, with the rule's rate split
/// evenly over the event loops (connections spread over loops, so a source's sustained total stays
/// at the configured rate). The burst is not split: a browser's first page view over one HTTP/2
/// connection (one loop) may fetch its whole burst of assets at once; a client spreading
/// connections over loops gets at most one burst per loop, once.
public struct SiteRateLimiter: Sendable {
    /// The verdict for one request.
    public enum Verdict: Equatable, Sendable {
        /// Every matching rule allowed it (shadow rules may have counted an overrun).
        case allowed(shadowHits: [String])
        /// A rule refused it.
        case limited(rule: String, action: RateLimitAction, retryAfterSeconds: Int)
    }

    /// The rules, in order.
    public let rules: [RateLimitRule]
    /// True when some rule is keyed on the API key (the request's key must then be looked up).
    public let usesAPIKeys: Bool
    private var tables: [TokenBucketTable]

    /// Tables for `rules`, each sized and paced for one of `loops` event loops.
    public init(rules: [RateLimitRule], loops: Int) {
        self.rules = rules
        self.usesAPIKeys = rules.contains { $0.key == .apiKey }
        let n = Double(max(1, loops))
        self.tables = rules.map {
            TokenBucketTable(capacity: $0.tableCapacity, ratePerSecond: $0.ratePerSecond / n, burst: max(1, $0.burst))
        }
    }

    /// Applies every matching rule to one request at `now` (nanoseconds).
    public mutating func check(
        client: IPAddress, method: HTTPMethod, target: String, apiKey: PresentedAPIKey? = nil, fingerprint: String? = nil, now: Int64
    ) -> Verdict {
        var shadowHits: [String] = []
        for i in rules.indices where rules[i].matches(method: method, target: target) {
            let rule = rules[i]
            guard let bucket = rule.bucketKey(for: client, apiKey: apiKey, fingerprint: fingerprint) else { continue }
            if case .limited(let retry) = tables[i].take(bucket, now: now) {
                if rule.shadow {
                    shadowHits.append(rule.name)
                } else {
                    return .limited(rule: rule.name, action: rule.action, retryAfterSeconds: retry)
                }
            }
        }
        return .allowed(shadowHits: shadowHits)
    }
}
