/// What the country and network rules decided for one request.
package enum GeoVerdict: Equatable, Sendable {
    /// No rule applies, or an `allow` rule matched.
    case pass
    /// A `deny` rule matched: 403.
    case deny
    /// A `challenge` rule matched: the challenge, whatever the site's mode.
    case challenge
    /// A `limit` rule matched and the source is over its rate: 429, retry after this many seconds.
    case limited(retryAfterSeconds: Int)
}

/// The country and network guard of one event loop: the shared databases, this loop's lookup
/// cache, and the per-source buckets of `limit` rules. Confined to its loop (no locks).
package final class GeoFilter {
    /// The shared databases.
    package let resolver: GeoResolver
    private var cache: GeoLookupCache
    /// Rules per site (same order as the config).
    private let sites: [GeoRules]
    /// Buckets per site, per rule (nil for rules that are not `limit`).
    private var buckets: [[TokenBucketTable?]]

    /// A filter for `sites` on one of `loops` event loops (`limit` rates are split between loops,
    /// like rate limits); `cacheSlots` lookups are cached.
    package init(resolver: GeoResolver, sites: [GeoRules], loops: Int, cacheSlots: Int = 4096, bucketCapacity: Int = 65_536) {
        self.resolver = resolver
        self.sites = sites
        self.cache = GeoLookupCache(slots: cacheSlots)
        let n = Double(max(1, loops))
        self.buckets = sites.map { site in
            site.rules.map { rule in
                rule.action == .limit ? TokenBucketTable(capacity: bucketCapacity, ratePerSecond: rule.ratePerSecond / n, burst: max(1, rule.burst)) : nil
            }
        }
    }

    /// Country and network of `address`, cached.
    @inline(__always)
    package func lookup(_ address: IPAddress) -> GeoInfo {
        let resolver = self.resolver
        return cache.lookup(address) { resolver.lookup($0) }
    }

    /// Cache hits and misses so far.
    package var cacheStats: (hits: Int, misses: Int) { (cache.hits, cache.misses) }

    /// The verdict of site `site`'s rules on a request from `client` at `now` (nanoseconds).
    package func verdict(site: Int, client: IPAddress, now: Int64) -> GeoVerdict {
        guard site < sites.count, !sites[site].isEmpty else { return .pass }
        return verdict(site: site, client: client, place: lookup(client), now: now)
    }

    /// The same, for a client whose country and network (`place`, from ``lookup(_:)``) the caller
    /// already looked up.
    package func verdict(site: Int, client: IPAddress, place info: GeoInfo, now: Int64) -> GeoVerdict {
        guard site < sites.count, !sites[site].isEmpty else { return .pass }
        guard let decision = sites[site].decide(country: info.country, asn: info.asn) else { return .pass }
        let rule = decision.rule
        switch decision.action {
        case .allow: return .pass
        case .deny: return .deny
        case .challenge: return .challenge
        case .limit:
            guard buckets[site][rule] != nil else { return .pass }
            if case .limited(let retry) = buckets[site][rule]!.take(client, now: now) { return .limited(retryAfterSeconds: retry) }
            return .pass
        }
    }
}

@available(*, unavailable)
extension GeoFilter: Sendable {}
