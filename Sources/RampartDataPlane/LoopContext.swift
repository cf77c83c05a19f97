import Logging
import NIOCore
import NIOSSL
import RampartCore

/// Everything one event loop needs to serve requests: the current config, one ``SiteRuntime`` per
/// site (origin pools, balancer, rate limits, cache, defence), its counters and its request-id
/// sequence. Touched only on its loop, so the hot path
/// takes no locks; the gateway reaches it through `execute`/`submit` on that loop.
final class LoopContext {
    let eventLoop: any EventLoop
    let loopCount: Int
    let logger: Logger
    private(set) var config: RuntimeConfig
    /// One runtime per site, in the config's order (so the router's index picks one); a request
    /// keeps a reference to its site's runtime, not the index.
    private(set) var sites: [SiteRuntime] = []
    /// Refusals per source, towards an automatic ban.
    var strikes: StrikeCounter
    /// Sends a ban to the accept loop's ban list (set by the gateway).
    var reportBan: ((IPAddress, String) -> Void)?
    /// Revokes a clearance (by key) for a site (by name) on every event loop; set by the gateway.
    var revokeEverywhere: ((String, IPAddress) -> Void)?
    /// Answered challenges and redeemed tickets, shared by every event loop: once means once per
    /// gateway. Replaced by the gateway's shared ledger at start.
    var ledger = ChallengeLedger()

    /// Revokes clearance `key` on this loop's copy of `site`'s table (told by another loop).
    func revoke(site: String, key: IPAddress) {
        guard let runtime = sites.first(where: { $0.name == site }) else { return }
        _ = runtime.defence.revoked.ban(key, now: Int64(eventLoop.now.uptimeNanoseconds))
    }

    /// Counts a refusal of `source`; bans it when it has used up its strikes. True when banned.
    func strike(_ source: IPAddress, reason: RejectReason) -> Bool {
        guard config.source.bans.enabled, strikes.strike(source, now: Int64(eventLoop.now.uptimeNanoseconds)) else { return false }
        reportBan?(source, reason.rawValue)
        return true
    }

    /// Clients the origins answered with success: they go first in origin queues.
    var knownGood = KnownGoodTable()
    /// Session credentials the origins answered with success (keyed by the credential's hash).
    var knownGoodCredentials = KnownGoodTable()

    /// Operators' runtime rules (``OperatorRule``), pushed by the gateway on every change.
    var operatorRules = OperatorRuleSet()

    /// True when `client` goes first in origin queues on `site`: allow-listed (config or runtime
    /// rule), or vouched for by the origin.
    func hasPriority(_ client: IPAddress, site: String? = nil, now: NIODeadline) -> Bool {
        let allow = config.source.knownGood.allow
        if !allow.isEmpty, allow.contains(client) { return true }
        if !operatorRules.isEmpty, operatorRules.allows(client, site: site, now: unixNow()) { return true }
        return knownGood.contains(client, now: Int64(now.uptimeNanoseconds))
    }

    private static func knownGoodTable(_ c: KnownGoodConfig) -> KnownGoodTable {
        KnownGoodTable(threshold: c.successes, minimumAge: c.minimumAge, lifetime: c.lifetime)
    }
    /// Keys that sign and check clearances, challenges and tickets.
    var keys: SigningKeys

    /// This second's traffic of every site, handed to the detection service.
    func takeTraffic() -> [(String, TrafficSecond)] {
        sites.map { site in
            var t = site.defence.takeTraffic()
            for pool in site.pools { t.originLimit += pool.concurrencyLimit }
            return (site.name, t)
        }
    }

    /// The detection service (or an operator) changed a site's mode or tier.
    func setMode(site: String, mode: SiteMode, tier: ChallengeTier) {
        for runtime in sites where runtime.name == site {
            let d = runtime.defence
            let raised = mode > d.mode
            d.mode = mode
            d.tier = tier
            if raised {
                for pool in runtime.pools { pool.recheckWaiters() }
            }
        }
    }
    /// Stale entries being refreshed with no client waiting (kept alive here until they end).
    var backgroundFetches: [ObjectIdentifier: BackgroundFetch] = [:]
    /// Cache keys being fetched from an origin right now, with the requests waiting for them.
    private var filling: [String: [() -> Void]] = [:]
    /// Most requests that wait for one key's fetch; more go to the origin themselves.
    static let maxCoalesced = 1000
    var counters = LoopCounters()
    private let idPrefix: UInt32
    private var idSequence: UInt32 = 0
    let rejectionLog: SampledLog
    /// True once shutdown started: responses say `Connection: close`.
    var draining = false
    /// True once the drain's bound has passed: what is still in flight is cut, not answered (an
    /// origin connection closed by the shutdown is not the origin's failure).
    var cutting = false
    private var pageTemplates: [Int: ErrorPage.Template] = [:]

    /// The error page template for a refusal, rendered once per loop.
    func pageTemplate(_ reason: RejectReason, json: Bool) -> ErrorPage.Template {
        let key = LoopCounters.reasonIndex[reason]! * 2 + (json ? 1 : 0)
        if let t = pageTemplates[key] { return t }
        let t = ErrorPage.template(status: reason.status, message: reason.explanation, json: json)
        pageTemplates[key] = t
        return t
    }

    private struct ProofOfWorkKey: Hashable {
        let language: ChallengePage.Language
        let difficulty: Int
        let waitSeconds: Int
    }
    private var powTemplates: [ProofOfWorkKey: ProofOfWorkTemplate] = [:]

    /// The proof-of-work page's template for these settings, split once per loop (at most a few:
    /// two languages times the sites' settings; dropped and rebuilt if reloads pile up more).
    func proofOfWorkTemplate(language: ChallengePage.Language, difficulty: Int, waitSeconds: Int) -> ProofOfWorkTemplate {
        let key = ProofOfWorkKey(language: language, difficulty: difficulty, waitSeconds: waitSeconds)
        if let t = powTemplates[key] { return t }
        if powTemplates.count >= 32 { powTemplates.removeAll() }
        let t = ProofOfWorkTemplate(language: language, difficulty: difficulty, waitSeconds: waitSeconds)
        powTemplates[key] = t
        return t
    }

    /// TLS handshakes started per source (per listener), and those in progress on this loop.
    var handshakeBuckets: [Int: TokenBucketTable] = [:]
    var handshakesInFlight = 0

    /// True when `peer` may start a TLS handshake on `listener` now.
    func admitHandshake(_ peer: IPAddress, listener: Int, tls: ListenerTLS) -> Bool {
        let loops = Double(max(1, loopCount))
        if handshakesInFlight >= max(1, tls.maxHandshakes / loopCount) { return false }
        // Taken in place: a copy out of the dictionary would copy the whole table on every handshake.
        let decision = handshakeBuckets[
            listener, default: TokenBucketTable(capacity: 65_536, ratePerSecond: tls.handshakeRate / loops, burst: max(2, tls.handshakeBurst / loops))
        ].take(peer, now: Int64(eventLoop.now.uptimeNanoseconds))
        if case .limited = decision { return false }
        return true
    }

    /// The access log, when one is configured.
    var accessLog: AccessLog?
    /// Country and network rules and lookups (docs/edge-filters.md); nil without geolocation.
    var geo: GeoFilter?
    /// TLS contexts per listener (nil for plain HTTP), swapped on reload.
    private(set) var tlsContexts: [NIOSSLContext?]

    /// Opens origin connections for this loop's pools.
    let originConnector: any OriginConnector

    init(
        eventLoop: any EventLoop, loopCount: Int, config: RuntimeConfig, logger: Logger, secret: [UInt8], tls: [NIOSSLContext?] = [],
        originConnector: any OriginConnector = SocketOriginConnector()
    ) {
        self.originConnector = originConnector
        self.keys = SigningKeys(secret: secret)
        self.tlsContexts = tls
        self.eventLoop = eventLoop
        self.loopCount = loopCount
        self.logger = logger
        self.config = config
        self.idPrefix = UInt32.random(in: 0...UInt32.max)
        self.rejectionLog = SampledLog(logger: logger, perSecond: 20)
        self.strikes = StrikeCounter(policy: config.source.bans, loops: loopCount)
        knownGood = Self.knownGoodTable(config.source.knownGood)
        knownGoodCredentials = Self.knownGoodTable(config.source.knownGood)
        rebuildSites()
    }

    /// Installs a new config: new requests use it; a request in flight keeps the site runtime (and
    /// so the policy) it was routed to, and the origin connection it has. Pools of origins that
    /// stay are kept with their connections and health.
    func apply(_ newConfig: RuntimeConfig, tls: [NIOSSLContext?]) {
        tlsContexts = tls
        if newConfig.source.listeners.map(\.tls) != config.source.listeners.map(\.tls) { handshakeBuckets = [:] }
        if config.source.knownGood != newConfig.source.knownGood {
            knownGood = Self.knownGoodTable(newConfig.source.knownGood)
            knownGoodCredentials = Self.knownGoodTable(newConfig.source.knownGood)
        }
        if config.source.bans != newConfig.source.bans { strikes = StrikeCounter(policy: newConfig.source.bans, loops: loopCount) }
        config = newConfig
        rebuildSites()
    }

    /// True when some request is fetching `key` from an origin.
    func isFilling(_ key: String) -> Bool { filling[key] != nil }

    /// Marks `key` as being fetched by the caller.
    func startFill(_ key: String) { filling[key] = filling[key] ?? [] }

    /// Waits for the fetch of `key`; false when too many already wait (go to the origin instead).
    func waitForFill(_ key: String, _ wake: @escaping () -> Void) -> Bool {
        guard var waiters = filling[key], waiters.count < Self.maxCoalesced else { return false }
        waiters.append(wake)
        filling[key] = waiters
        return true
    }

    /// The fetch of `key` ended (stored or not): wake everyone who waited for it.
    func finishFill(_ key: String) {
        guard let waiters = filling.removeValue(forKey: key) else { return }
        for wake in waiters { wake() }
    }

    /// Pools are kept across reloads while a site's origin keeps its address and TLS settings.
    static func poolKey(_ site: SiteConfig, _ origin: OriginConfig) -> String {
        "\(site.name)|\(origin.address)|\(origin.tls.map { "\($0)" } ?? "plain")"
    }

    /// New runtimes for the current config, carrying over from the old ones (matched by site
    /// name) what still applies: pools of origins that keep their address and TLS settings (with
    /// their connections and health), rate buckets, cached pages and defence state.
    private func rebuildSites() {
        var previousPools: [String: OriginPool] = [:]
        var previousSites: [String: SiteRuntime] = [:]
        for runtime in sites {
            previousSites[runtime.name] = runtime
            for (o, origin) in runtime.config.origins.enumerated() { previousPools[Self.poolKey(runtime.config, origin)] = runtime.pools[o] }
        }
        var kept = Set<ObjectIdentifier>()
        sites = config.sites.enumerated().map { s, site in
            let pools = site.origins.enumerated().map { o, origin in
                let share = max(1, (origin.maxConnections + loopCount - 1) / loopCount)
                let tls = config.originTLS[s][o]
                if let pool = previousPools[Self.poolKey(site, origin)] {
                    pool.tls = tls
                    pool.maxConnections = share
                    pool.configureAdaptive(origin, share: share, loops: loopCount)
                    pool.connectTimeout = site.limits.originConnectTimeout
                    pool.health.active = site.healthCheck
                    pool.health.passive = site.passive
                    kept.insert(ObjectIdentifier(pool))
                    return pool
                }
                return OriginPool(eventLoop: eventLoop, origin: origin, share: share, loops: loopCount, site: site, tls: tls, connector: originConnector)
            }
            return SiteRuntime(site: site, index: s, pools: pools, loops: loopCount, previous: previousSites[site.name])
        }
        for pool in previousPools.values where !kept.contains(ObjectIdentifier(pool)) { pool.closeIdle() }
    }

    /// Copies an active health check verdict to this loop's pool of that origin.
    func setOriginUp(site: String, origin: HostPort, up: Bool) {
        sites.first(where: { $0.name == site })?.pool(for: origin)?.health.setActiveUp(up)
    }

    /// A fresh request id: 15 hex digits (a random per-loop prefix and a sequence number). Fifteen
    /// ASCII bytes fit Swift's inline small-string form, so making one does not allocate.
    func nextRequestID() -> String {
        idSequence &+= 1
        let value = (UInt64(idPrefix) << 32 | UInt64(idSequence)) & 0x0FFF_FFFF_FFFF_FFFF
        return String(unsafeUninitializedCapacity: 15) { buffer in
            let digits: StaticString = "0123456789abcdef"
            for i in 0..<15 {
                let nibble = Int((value >> UInt64(4 * (14 - i))) & 0xF)
                buffer[i] = digits.utf8Start[nibble]
            }
            return 15
        }
    }

    /// Counts and logs (sampled) a refusal.
    func reject(_ reason: RejectReason, client: IPAddress?, detail: String? = nil) {
        counters.count(reason)
        rejectionLog.log(reason: reason, client: client, detail: detail)
    }
}

/// Logging that cannot become the bottleneck under flood: at most `perSecond` lines a second on
/// this loop, then one summary line with how many were left out. Counters stay exact elsewhere.
final class SampledLog {
    private let logger: Logger
    private let perSecond: Int
    private var windowStart = NIODeadline.now()
    private var emitted = 0
    private var suppressed = 0

    init(logger: Logger, perSecond: Int) {
        self.logger = logger
        self.perSecond = perSecond
    }

    func log(reason: RejectReason, client: IPAddress?, detail: String?) {
        let now = NIODeadline.now()
        if now - windowStart >= .seconds(1) {
            if suppressed > 0 {
                logger.notice("rejections not logged in the last window", metadata: ["suppressed": "\(suppressed)"])
            }
            windowStart = now
            emitted = 0
            suppressed = 0
        }
        guard emitted < perSecond else {
            suppressed += 1
            return
        }
        emitted += 1
        var metadata: Logger.Metadata = ["reason": "\(reason.rawValue)", "status": "\(reason.status.code)"]
        if let client { metadata["client"] = "\(client)" }
        if let detail { metadata["detail"] = "\(detail)" }
        logger.info("rejected", metadata: metadata)
    }
}

@available(*, unavailable)
extension LoopContext: Sendable {}

@available(*, unavailable)
extension SampledLog: Sendable {}
