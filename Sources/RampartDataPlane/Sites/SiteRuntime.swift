import NIOCore
import NIOSSL
import RampartCore

/// One site on one event loop, as one object: the compiled, immutable policy its requests run
/// under, and the loop's origin pools, balancer, rate-limit tables, micro-cache and defence state
/// for it. Loop-confined.
///
/// A request holds a reference to the runtime it was routed to (never an index into the config):
/// a reload builds new runtimes and swaps them in for new requests, while a request in flight
/// keeps the policy it started with, whether its site was kept, reordered or removed. What must
/// outlive a reload (pools with their connections and health, the defence's mode and tables, rate
/// buckets and cached pages when their settings did not change) is carried into the new runtime.
final class SiteRuntime {
    /// The site's settings, fixed for the life of this runtime.
    let config: SiteConfig
    /// The loop's connection pools to the site's origins, in the config's order.
    let pools: [OriginPool]
    private var balancer: OriginBalancer
    /// Rate-limit tables.
    var limiter: SiteRateLimiter
    /// The micro-cache.
    var cache: MicroCacheStore
    /// Detection and challenge state (mode, this second's traffic, clearance tables).
    let defence: SiteDefence
    /// The site's position in the config this runtime was built from. Only for per-loop tables
    /// built from that same config and swapped with it in one loop turn (the country and network
    /// filter); a request holds the runtime itself, never this number.
    let configIndex: Int

    var name: String { config.name }

    /// A runtime for `site`; what `previous` (the same site before a reload) holds is kept where
    /// the settings it depends on did not change.
    init(site: SiteConfig, index: Int, pools: [OriginPool], loops: Int, previous: SiteRuntime?) {
        config = site
        configIndex = index
        self.pools = pools
        balancer = OriginBalancer(strategy: site.balance)
        if let previous, previous.config.rateLimits == site.rateLimits {
            // A reload is no amnesty: unchanged rules keep their buckets.
            limiter = previous.limiter
        } else {
            limiter = SiteRateLimiter(rules: site.rateLimits, loops: loops)
        }
        if let previous, previous.config.cache == site.cache {
            cache = previous.cache
        } else {
            cache = MicroCacheStore(maxBytes: max(65536, site.cache.maxBytes / max(1, loops)))
        }
        defence = previous?.defence.update(site: site) ?? SiteDefence(site: site, loops: loops)
    }

    /// Chooses an available origin pool (other than `excluding`). When health checks and ejection
    /// have taken every origin out, all of them are tried anyway ("panic mode", as in Envoy): a
    /// saturated origin fails its checks but still serves, and taking the last one out would turn
    /// an overload into an outage. A really dead origin refuses the connection at once, and the
    /// request gets a stale copy or a 503. Nil only when there is nothing else to try.
    /// Panic routings are counted in `counters`.
    func pickPool(now: NIODeadline, excluding: OriginPool? = nil, counters: inout LoopCounters) -> OriginPool? {
        let pools = self.pools
        if let index = balancer.pick(
            count: pools.count,
            available: { pools[$0] !== excluding && pools[$0].health.isAvailable(now: now) },
            inFlight: { pools[$0].inFlight }
        ) {
            return pools[index]
        }
        counters.panicRouted += 1
        let index = balancer.pick(count: pools.count, available: { pools[$0] !== excluding }, inFlight: { pools[$0].inFlight })
        return index.map { pools[$0] }
    }

    /// The site's pool for `origin`, if it has one.
    func pool(for origin: HostPort) -> OriginPool? {
        guard let i = config.origins.firstIndex(where: { $0.address == origin }) else { return nil }
        return pools[i]
    }
}

@available(*, unavailable)
extension SiteRuntime: Sendable {}
