import Logging
import NIOCore
import RampartCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What one site looks like right now (the admin API and the dashboard read this).
public struct SiteStatus: Sendable, Equatable {
    public var site: String
    public var mode: SiteMode
    public var automaticMode: SiteMode
    public var override: SiteMode?
    public var tier: ChallengeTier
    public var baseline: Double
    /// The last complete second.
    public var requests: Int
    public var toOrigin: Int
    public var cacheServed: Int
    public var challenged: Int
    public var cleared: Int
    public var limited: Int
    public var distinctSources: Int
    public var queuePeak: Int
    public var meanLatencyMillis: Double
    /// Requests the origins may serve at once, as learned (``TrafficSecond/originLimit``).
    public var originLimit: Int = 0
}

/// What alert webhooks are told.
public struct AlertEvent: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable {
        case modeChanged = "mode_changed"
        case incidentOpened = "incident_opened"
        case incidentClosed = "incident_closed"
        /// The fleet's database became unreachable (`site` holds the node's name) / reachable again.
        case fleetDegraded = "fleet_degraded"
        case fleetRestored = "fleet_restored"
    }

    public var kind: Kind
    public var site: String
    public var from: String
    public var to: String
    public var tier: String
    public var reason: String
    public var manual: Bool
    public var incident: Incident?

    /// One line for chat systems (Slack's and Matrix hookshot's `text` field).
    public var text: String {
        switch kind {
        case .modeChanged:
            return "Rampart: site \(site) is now \(to.replacingOccurrences(of: "_", with: " ")) (was \(from.replacingOccurrences(of: "_", with: " ")))\(manual ? ", set by an operator" : ""): \(reason)"
        case .incidentOpened:
            return "Rampart: incident #\(incident?.id ?? 0) opened on \(site): \(reason)"
        case .fleetDegraded:
            return "Rampart: node \(site) lost the fleet database; it serves on its last shared state and queues its decisions: \(reason)"
        case .fleetRestored:
            return "Rampart: node \(site) is back in the fleet"
        case .incidentClosed:
            let i = incident
            let length = i.map { ($0.end ?? $0.start) - $0.start } ?? 0
            return "Rampart: incident #\(i?.id ?? 0) on \(site) closed after \(length) s; peak \(i?.peakRequestsPerSecond ?? 0) req/s, \(i?.toOrigin ?? 0) requests reached the origin, \(i?.challenged ?? 0) challenged, \(i?.limited ?? 0) limited"
        }
    }
}

/// The heaviest keys of one site's last second.
public struct SiteTop: Sendable, Equatable, Codable {
    public var site: String
    public var sources: [TopEntry]
    public var subnets: [TopEntry]
    public var paths: [TopEntry]
    public var agents: [TopEntry]
    /// JA4 TLS fingerprints (empty for plain-HTTP traffic).
    public var fingerprints: [TopEntry]
    /// Countries and networks (`AS64500`) of the sources (empty without geolocation).
    public var countries: [TopEntry]
    public var networks: [TopEntry]
}

/// Collects each loop's second of traffic once a second, runs every site's ``ModeController``,
/// publishes mode changes to the loops, and keeps incidents. Lives on the accept loop; the hot path
/// never waits for it (loops hand over a value once a second).
///
/// Operator overrides set through the admin API are stored and survive a restart. The config's
/// `mode:` is the operator's standing order and wins: a stored override applies only while the
/// site's config says `auto`, and a config that fixes the mode replaces (and deletes) it.
final class DetectionService {
    private let loop: any EventLoop
    private let contexts: [NIOLoopBound<LoopContext>]
    private let logger: Logger
    private var controllers: [String: ModeController] = [:]
    private var last: [String: TrafficSecond] = [:]
    private var open: [String: (Incident, TrafficSecond)] = [:]
    private(set) var incidents: [Incident] = []
    private var nextIncident = 1
    private var task: RepeatedTask?
    private var sites: [SiteConfig] = []
    /// Called with every mode change and when incidents open and close (alert webhooks).
    var alert: (@Sendable (AlertEvent) -> Void)?
    static let keptIncidents = 200
    /// Closed incidents that keep their per-second series and events in memory (newest first);
    /// older ones keep their summary here and their full record in the state database, so memory
    /// stays bounded (a full series is up to 3600 points, about 260 KB).
    static let detailedIncidents = 20

    private let store: (any GatewayStore)?
    /// Operators' overrides as stored in the state database, by site (kept equal to it).
    private var storedOverrides: [String: SiteMode] = [:]

    /// Runs on `loop` (the accept loop), before any listener is bound.
    init(loop: any EventLoop, contexts: [NIOLoopBound<LoopContext>], logger: Logger, store: (any GatewayStore)?) {
        self.loop = loop
        self.contexts = contexts
        self.logger = logger
        self.store = store
        if let store { restore(from: store) }
        if let config = contexts.first(where: { $0.eventLoop.inEventLoop })?.value.config.source {
            publishInitialModes(config.sites)
        }
    }

    /// Reads back what the state database kept: incidents and operators' mode overrides.
    private func restore(from store: any GatewayStore) {
        do {
            storedOverrides = try store.modeOverrides()
        } catch {
            logger.error("cannot read stored mode overrides; every site starts in its configured mode", metadata: ["error": "\(error)"])
        }
        do {
            // Incidents survive a restart; one left open by a stop is closed at the restart.
            let now = unixNow()
            incidents = try store.incidents(limit: Self.keptIncidents).map { stored in
                guard stored.end == nil else { return stored }
                var closed = stored
                closed.end = now
                closed.timeline.append("\(now) closed: the gateway restarted")
                store.saveIncident(closed)
                return closed
            }
            trimDetails()
            nextIncident = (incidents.map(\.id).max() ?? 0) + 1
        } catch {
            logger.error("cannot read stored incidents; starting without them", metadata: ["error": "\(error)"])
        }
    }

    /// Hands every loop the mode each site starts in (the config's `mode:`, else a stored
    /// override) before any listener is bound, so the first request already meets it. The
    /// controllers, the log line and the incident follow in ``start(_:)``.
    private func publishInitialModes(_ sites: [SiteConfig]) {
        for site in sites {
            guard let mode = site.fixedMode ?? storedOverrides[site.name] else { continue }
            let name = site.name
            let tier = site.challenge.tier ?? .cookie
            for bound in contexts {
                bound.eventLoop.execute { bound.value.setMode(site: name, mode: mode, tier: tier) }
            }
        }
    }

    /// Starts (or, after a reload, updates) the per-site controllers and the one-second tick.
    func start(_ config: GatewayConfig) {
        let previous = Dictionary(sites.map { ($0.name, $0.fixedMode) }, uniquingKeysWith: { a, _ in a })
        sites = config.sites
        var next: [String: ModeController] = [:]
        var created: [SiteConfig] = []
        for site in config.sites {
            if controllers[site.name] == nil { created.append(site) }
            var c = controllers[site.name] ?? ModeController(config: site.detection, fixedTier: site.challenge.tier)
            c.config = site.detection
            c.fixedTier = site.challenge.tier
            next[site.name] = c
        }
        controllers = next
        // A mode written in the config acts as an operator override; removing it returns the site
        // to automatic (an override set through the admin API stays until cleared there). A mode
        // the config fixes is the standing order: it replaces a stored API override for good.
        for site in config.sites where site.fixedMode != (previous[site.name] ?? nil) {
            if site.fixedMode != nil, storedOverrides.removeValue(forKey: site.name) != nil {
                store?.removeModeOverride(site: site.name)
                logger.notice("stored mode override dropped: the config fixes the site's mode", metadata: ["site": "\(site.name)"])
            }
            _ = force(site: site.name, mode: site.fixedMode, reason: nil)
        }
        for site in created where site.fixedMode == nil {
            guard let mode = storedOverrides[site.name] else { continue }
            _ = force(site: site.name, mode: mode, reason: "operator override restored from the state database")
        }
        if !running { schedule() }
    }

    /// Collects the loops' traffic every 1/``slices`` s; every ``slices``-th collection is the
    /// detector's tick. Alone, once a second from the start; in a fleet, on the wall clock's
    /// boundaries (every node collects at the same instants, so the sums line up), the detector
    /// deciding ``fleetTickDelay`` after each whole second, once the others' summaries of that
    /// second have arrived.
    private func schedule() {
        task?.cancel()
        task = nil
        aligned?.cancel()
        aligned = nil
        running = true
        guard slices > 1 else {
            task = loop.scheduleRepeatedAsyncTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in
                self.collect(tick: true)
            }
            return
        }
        scheduleAligned()
    }

    private func scheduleAligned() {
        guard running else { return }
        let period = 1_000_000_000 / Int64(slices)
        let now = Self.wallNanos()
        let next = (now / period + 1) * period
        let tick = (next / period) % Int64(slices) == 0
        aligned = loop.scheduleTask(in: .nanoseconds(next - now)) { [self] in
            self.collect(tick: tick).whenComplete { _ in self.scheduleAligned() }
        }
    }

    func stop() {
        running = false
        task?.cancel()
        task = nil
        aligned?.cancel()
        aligned = nil
    }

    private var aligned: Scheduled<Void>?
    private var running = false
    /// How long after a whole second a fleet node's detector decides (the others' summaries of
    /// that second are published at once and read 40 ms later).
    static let fleetTickDelay = TimeAmount.milliseconds(100)

    static func wallNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    private func collect(tick: Bool) -> EventLoopFuture<Void> {
        let futures = contexts.map { bound in bound.eventLoop.submit { bound.value.takeTraffic() } }
        return EventLoopFuture.whenAllSucceed(futures, on: loop).map { perLoop in
            var slice: [String: TrafficSecond] = [:]
            for list in perLoop {
                for (site, second) in list { slice[site, default: TrafficSecond()].merge(second) }
            }
            self.recent.append(slice)
            if self.recent.count > self.slices { self.recent.removeFirst(self.recent.count - self.slices) }
            let window = self.slices == 1 ? slice : Self.window(self.recent)
            // This node's own last second (sliding, in a fleet), before the fleet's is added.
            self.onWindow?(window)
            self.refreshRaised()
            guard tick else { return }
            let now = unixNow()
            guard self.slices > 1 else { return self.decide(window, at: now) }
            self.loop.scheduleTask(in: Self.fleetTickDelay) { [self] in self.decide(window, at: now) }
        }
    }

    /// The detector's tick: this node's last second plus, in a fleet, the other nodes' (the
    /// detector sees the fleet's sums).
    private func decide(_ window: [String: TrafficSecond], at now: Int64) {
        var merged = window
        if let fleet = fleetSeconds, NIODeadline.now() <= fleet.until {
            for (site, second) in fleet.traffic { merged[site, default: TrafficSecond()].merge(second) }
        }
        observe(merged, at: now)
    }

    /// The last second made of the newest slices: counters summed, sketches united, the origin
    /// limit as of the newest slice (it is a level, not a count).
    static func window(_ slices: [[String: TrafficSecond]]) -> [String: TrafficSecond] {
        var out: [String: TrafficSecond] = [:]
        for slice in slices {
            for (site, second) in slice {
                // A quiet slice adds nothing but its levels: skip merging its empty sketches.
                if second.requests == 0, second.latencyCount == 0, second.toOrigin == 0, second.originErrors == 0, second.shed == 0,
                    second.credentialFailures == 0, second.cacheServed == 0 {
                    out[site, default: TrafficSecond()].queuePeak = max(out[site]?.queuePeak ?? 0, second.queuePeak)
                    continue
                }
                out[site, default: TrafficSecond()].merge(second)
            }
        }
        for (site, second) in slices.last ?? [:] { out[site]?.originLimit = second.originLimit }
        return out
    }

    /// Collections per second: 1 alone; more in a fleet, which publishes each one's sliding last
    /// second (``setSlices(_:)``).
    private var slices = 1
    private var recent: [[String: TrafficSecond]] = []

    /// Collects `n` times a second from now on (1 to 10).
    func setSlices(_ n: Int) {
        let n = min(10, max(1, n))
        guard n != slices else { return }
        slices = n
        if running { schedule() }
    }

    /// Told at each collection of this node's own last second per site (before the fleet's is
    /// added): the fleet publishes it.
    var onWindow: (([String: TrafficSecond]) -> Void)?
    /// The other nodes' last second per site, added to this node's until `until`.
    var fleetSeconds: (until: NIODeadline, traffic: [String: TrafficSecond])?

    // MARK: - Modes raised by the fleet's detection (docs/fleet.md)

    /// Told when a site's automatic mode or tier (this node's own detection, never what the fleet
    /// raised) changes: site, mode, tier, reason. The fleet shares it with a time to live.
    var onAutomaticMode: ((String, SiteMode, ChallengeTier, String) -> Void)? {
        didSet { for site in controllers.keys { shareAutomatic(site, reason: "in force when the node joined the fleet") } }
    }
    private var sharedAutomatic: [String: (SiteMode, ChallengeTier)] = [:]
    /// The other nodes' raised modes, with their leases.
    private var raisedLeases = RaisedModeLeases()
    /// The strongest live raised mode of each site, as applied.
    private var floors: [String: RaisedMode] = [:]
    /// The mode and tier the loops were last given, per site.
    private var published: [String: (mode: SiteMode, tier: ChallengeTier)] = [:]

    /// Replaces the other nodes' raised modes with a full read (each `remaining` seconds to live).
    func setRaised(_ read: [(site: String, raised: RaisedMode, remaining: Double)]) {
        raisedLeases.replace(with: read, now: Self.monotonic())
        refreshRaised()
    }

    /// Applies the strongest live raised mode of each site, dropping those whose lease ran out.
    private func refreshRaised() {
        guard !raisedLeases.isEmpty || !floors.isEmpty else { return }
        let now = Self.monotonic()
        raisedLeases.expire(now: now)
        let strongest = raisedLeases.strongest(now: now)
        guard strongest != floors else { return }
        let before = floors
        floors = strongest
        for site in Set(before.keys).union(strongest.keys) where before[site] != strongest[site] {
            let reason = strongest[site].map { "raised by node \($0.node)'s detection: \($0.reason)" }
                ?? "the mode node \(before[site]?.node ?? "?") raised lapsed (no node renews it)"
            settle(site, reason: reason, manual: false, at: unixNow())
        }
    }

    /// Publishes to the loops the mode in force (``modeInForce``) when it differs from what they
    /// have, with the log line, the alert and the incident's timeline.
    private func settle(_ site: String, reason: String, manual: Bool, at now: Int64) {
        guard let controller = controllers[site] else { return }
        let raised = controller.config.enabled ? floors[site] : nil
        let inForce = modeInForce(override: controller.override, automatic: controller.automatic, tier: controller.tier, fixedTier: controller.fixedTier, raised: raised)
        let before = published[site] ?? (.normal, controller.fixedTier ?? .cookie)
        guard inForce != before else { return }
        published[site] = inForce
        changed(site: site, change: .inForce(from: before.mode, to: inForce.mode, tier: inForce.tier, at: now, reason: reason, manual: manual), controller: controller, at: now)
    }

    /// Tells the fleet about a change of the site's automatic mode or tier.
    private func shareAutomatic(_ site: String, reason: String) {
        guard let onAutomaticMode, let c = controllers[site] else { return }
        let now = (c.automatic, c.automatic == .normal ? ChallengeTier.cookie : c.tier)
        guard now != sharedAutomatic[site] ?? (.normal, .cookie) else { return }
        sharedAutomatic[site] = now
        onAutomaticMode(site, now.0, now.1, reason)
    }

    static func monotonic() -> Double { Double(NIODeadline.now().uptimeNanoseconds) / 1e9 }

    /// Feeds one merged second per site (exposed for tests through the gateway).
    func observe(_ merged: [String: TrafficSecond], at now: Int64) {
        for (site, second) in merged {
            guard var controller = controllers[site] else { continue }
            let change = controller.observe(second, at: now)
            controllers[site] = controller
            last[site] = second
            account(site: site, second: second, controller: controller, at: now)
            if now % 5 == 0, let (incident, _) = open[site] { store?.saveIncident(incident) }
            if let change {
                settle(site, reason: change.reason, manual: false, at: now)
                shareAutomatic(site, reason: change.reason)
            }
        }
    }

    /// Told of every mode an operator sets here through ``Gateway/setMode(site:mode:)`` (nil:
    /// automatic), on the accept loop: the fleet shares them.
    var onOperatorMode: ((String, SiteMode?) -> Void)?

    /// An operator forces a site's mode through the admin API (nil: automatic again). Stored, so
    /// it survives a restart, while the site's config says `auto`; on a site whose config fixes
    /// the mode it lasts until the next restart (or a reload that changes `mode:`). False when the
    /// site does not exist.
    func setOverride(site: String, mode: SiteMode?) -> Bool {
        guard controllers[site] != nil else { return false }
        if let mode {
            if sites.first(where: { $0.name == site })?.fixedMode == nil {
                storedOverrides[site] = mode
                store?.saveModeOverride(site: site, mode: mode, at: unixNow())
            } else {
                logger.notice("mode override not stored: the config fixes this site's mode, which applies again at restart", metadata: ["site": "\(site)"])
            }
        } else if storedOverrides.removeValue(forKey: site) != nil {
            store?.removeModeOverride(site: site)
        }
        let forced = force(site: site, mode: mode, reason: nil)
        // After the change: an override that opens an incident is the incident's first action.
        note(site: site, IncidentEvent(
            time: unixNow(), kind: .operatorMode,
            text: mode.map { "an operator forced the mode to \($0.rawValue) (admin API)" } ?? "an operator returned the site to automatic mode (admin API)"
        ))
        return forced
    }

    /// Adds `event` to `site`'s open incident, or to every open incident when `site` is nil (bans
    /// apply to the whole gateway). Nothing happens when no incident is open.
    func note(site: String?, _ event: IncidentEvent) {
        for key in Array(open.keys) where site == nil || key == site {
            guard let (kept, totals) = open.removeValue(forKey: key) else { continue }
            var incident = kept
            incident.note(event)
            if event.kind == .ban || event.kind == .operatorBan { incident.bansIssued = (incident.bansIssued ?? 0) + 1 }
            open[key] = (incident, totals)
        }
    }

    /// Puts the override in force on the controller and publishes the change. False when the site
    /// does not exist.
    private func force(site: String, mode: SiteMode?, reason: String?) -> Bool {
        guard var controller = controllers[site] else { return false }
        let now = unixNow()
        let change = controller.setOverride(mode, at: now, reason: reason)
        controllers[site] = controller
        if let change { settle(site, reason: change.reason, manual: true, at: now) }
        return true
    }

    private func changed(site: String, change: ModeChange, controller: ModeController, at now: Int64) {
        for bound in contexts {
            let mode = change.to
            let tier = change.tier
            bound.eventLoop.execute { bound.value.setMode(site: site, mode: mode, tier: tier) }
        }
        logger.notice(
            "site mode changed",
            metadata: [
                "site": "\(site)", "from": "\(change.from.rawValue)", "to": "\(change.to.rawValue)",
                "tier": "\(change.tier.rawValue)", "reason": "\(change.reason)", "manual": "\(change.manual)",
            ]
        )
        alert?(AlertEvent(
            kind: .modeChanged, site: site, from: change.from.rawValue, to: change.to.rawValue, tier: change.tier.rawValue,
            reason: change.reason, manual: change.manual, incident: nil
        ))
        let line = "\(now) \(change.from.rawValue) -> \(change.to.rawValue) (\(change.tier.rawValue))\(change.manual ? " by operator" : ""): \(change.reason)"
        let event = IncidentEvent(
            time: now, kind: .mode,
            text: "\(change.from.rawValue) -> \(change.to.rawValue) (challenge tier \(change.tier.rawValue))\(change.manual ? " by an operator" : ""): \(change.reason)"
        )
        if change.to != .normal {
            if case (var incident, let totals)? = open[site] {
                incident.timeline.append(line)
                incident.note(event)
                if change.to > SiteMode(rawValue: incident.peakMode) ?? .normal { incident.peakMode = change.to.rawValue }
                open[site] = (incident, totals)
                store?.saveIncident(incident)
            } else {
                var incident = Incident(id: nextIncident, site: site, start: now, mode: change.to, line: line)
                incident.note(event)
                nextIncident += 1
                open[site] = (incident, TrafficSecond())
                if let second = last[site] { account(site: site, second: second, controller: controller, at: now) }
                store?.saveIncident(open[site]!.0)
                alert?(AlertEvent(kind: .incidentOpened, site: site, from: change.from.rawValue, to: change.to.rawValue, tier: change.tier.rawValue,
                                  reason: change.reason, manual: change.manual, incident: open[site]!.0.summary))
            }
        } else if case (var incident, let totals)? = open.removeValue(forKey: site) {
            incident.timeline.append(line)
            incident.note(event)
            incident.end = now
            Self.summarise(&incident, totals)
            incidents.append(incident)
            if incidents.count > Self.keptIncidents { incidents.removeFirst(incidents.count - Self.keptIncidents) }
            trimDetails()
            store?.saveIncident(incident)
            alert?(AlertEvent(kind: .incidentClosed, site: site, from: change.from.rawValue, to: change.to.rawValue, tier: change.tier.rawValue,
                              reason: change.reason, manual: change.manual, incident: incident.summary))
        }
    }

    /// Drops the series and events of closed incidents older than the newest ``detailedIncidents``.
    private func trimDetails() {
        guard incidents.count > Self.detailedIncidents else { return }
        for i in 0..<(incidents.count - Self.detailedIncidents) where incidents[i].series != nil || incidents[i].events != nil {
            incidents[i] = incidents[i].summary
        }
    }

    private func account(site: String, second: TrafficSecond, controller: ModeController, at now: Int64) {
        // Taken out of the dictionary (and the series out of the incident) so that appending to
        // the series mutates it in place instead of copying up to 3600 points every second.
        guard var (incident, totals) = open.removeValue(forKey: site) else { return }
        totals.merge(second)
        if second.requests > incident.peakRequestsPerSecond || incident.peak == nil {
            incident.peak = IncidentPeak(
                time: now, requests: second.requests,
                originLatencyMillis: (second.meanLatencyMillis * 10).rounded() / 10, originQueue: second.queuePeak
            )
        }
        var series = incident.series ?? IncidentSeries()
        incident.series = nil
        series.add(SeriesPoint(
            time: now, requests: second.requests, toOrigin: second.toOrigin, cacheServed: second.cacheServed,
            challenged: second.challenged, cleared: second.cleared, refused: second.limited + second.shed + second.clearanceLimited,
            originQueue: second.queuePeak, latencyWeightedMillis: second.meanLatencyMillis * Double(second.toOrigin)
        ))
        incident.series = series
        incident.peakRequestsPerSecond = max(incident.peakRequestsPerSecond, second.requests)
        incident.peakDistinctSources = max(incident.peakDistinctSources, second.sources.estimate)
        Self.summarise(&incident, totals)
        open[site] = (incident, totals)
    }

    private static func summarise(_ incident: inout Incident, _ t: TrafficSecond) {
        incident.requests = t.requests
        incident.toOrigin = t.toOrigin
        incident.challenged = t.challenged
        incident.cleared = t.cleared
        incident.limited = t.limited
        incident.cacheServed = t.cacheServed
        incident.shed = t.shed
        incident.clearanceLimited = t.clearanceLimited
        incident.originErrors = t.originErrors
        incident.topSources = t.topSources.top(10).map { TopEntry(key: $0.key.description, count: $0.count) }
        incident.topSubnets = t.topSubnets.top(10).map { TopEntry(key: $0.key.defaultSubnetDescription, count: $0.count) }
        incident.topPaths = t.topPaths.top(10).map { TopEntry(key: $0.key, count: $0.count) }
        incident.topAgents = t.topAgents.top(10).map { TopEntry(key: $0.key, count: $0.count) }
        incident.topFingerprints = t.topFingerprints.top(10).map { TopEntry(key: $0.key, count: $0.count) }
        incident.topCountries = t.topCountries.isEmpty ? nil : t.topCountries.top(10).map { TopEntry(key: $0.key, count: $0.count) }
        incident.topNetworks = t.topNetworks.isEmpty ? nil : t.topNetworks.top(10).map { TopEntry(key: $0.key, count: $0.count) }
        incident.topRefusedSources = t.refusedSources.top(10).map { TopEntry(key: $0.key.description, count: $0.count) }
        incident.topRefusedSubnets = t.refusedSubnets.top(10).map { TopEntry(key: $0.key.defaultSubnetDescription, count: $0.count) }
    }

    /// Every site's current status.
    func status() -> [SiteStatus] {
        sites.compactMap { site in
            guard let c = controllers[site.name] else { return nil }
            let s = last[site.name] ?? TrafficSecond()
            return SiteStatus(
                site: site.name, mode: published[site.name]?.mode ?? c.mode, automaticMode: c.automatic, override: c.override,
                tier: published[site.name]?.tier ?? c.tier, baseline: c.baseline,
                requests: s.requests, toOrigin: s.toOrigin, cacheServed: s.cacheServed, challenged: s.challenged, cleared: s.cleared,
                limited: s.limited, distinctSources: s.sources.estimate, queuePeak: s.queuePeak, meanLatencyMillis: s.meanLatencyMillis,
                originLimit: s.originLimit
            )
        }
    }

    /// The last second's heaviest sources, subnets, paths and agents of every site.
    func top(_ n: Int) -> [SiteTop] {
        sites.map { site in
            let s = last[site.name] ?? TrafficSecond()
            return SiteTop(
                site: site.name,
                sources: s.topSources.top(n).map { TopEntry(key: $0.key.description, count: $0.count) },
                subnets: s.topSubnets.top(n).map { TopEntry(key: $0.key.defaultSubnetDescription, count: $0.count) },
                paths: s.topPaths.top(n).map { TopEntry(key: $0.key, count: $0.count) },
                agents: s.topAgents.top(n).map { TopEntry(key: $0.key, count: $0.count) },
                fingerprints: s.topFingerprints.top(n).map { TopEntry(key: $0.key, count: $0.count) },
                countries: s.topCountries.top(n).map { TopEntry(key: $0.key, count: $0.count) },
                networks: s.topNetworks.top(n).map { TopEntry(key: $0.key, count: $0.count) }
            )
        }
    }

    /// Closed incidents (oldest first) followed by open ones.
    func allIncidents() -> [Incident] {
        incidents + open.values.map(\.0).sorted { $0.id < $1.id }
    }
}

@available(*, unavailable)
extension DetectionService: Sendable {}
