import NIOCore
import RampartCore

/// The micro-cache. A bodiless request the site's cache policy allows gets a key; a fresh copy
/// answers it at once; a stale one answers it too while one background fetch refreshes the copy
/// (stale-while-revalidate); a fetch of the same key already under way is waited for
/// (coalescing); otherwise this request fetches for the cache. The key is kept so that an origin
/// failure can still be answered with a copy stored meanwhile (stale-if-error).
enum CacheLookupPhase {
    static func run(_ request: inout RequestContext, loop: LoopContext, now: NIODeadline) -> PhaseResult {
        let site = request.site!
        let accepted = request.accepted
        guard request.upgrade == nil, accepted.framing == .none || accepted.framing == .length(0), let forwarded = request.forwardHead,
            let key = CachePolicy.key(method: request.head.method, target: accepted.target, host: accepted.host ?? "", headers: forwarded.headers, config: site.config.cache)
        else { return .next }
        request.cacheKey = key
        if let (entry, fresh) = site.cache.lookup(key, now: now) {
            if !fresh, !loop.isFilling(key), let pool = site.pickPool(now: now, counters: &loop.counters) {
                loop.startFill(key)
                BackgroundFetch(loop: loop, site: site, key: key, head: forwarded, pool: pool).start(now: now)
            }
            return .respond(.cached(entry, stale: !fresh))
        }
        if loop.isFilling(key) { return .hold(.coalesce(key: key)) }
        loop.startFill(key)
        request.fillKey = key
        return .next
    }
}
