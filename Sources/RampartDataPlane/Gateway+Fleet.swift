import NIOCore
import RampartCore

/// The fleet's way in and out of the gateway's ban list (docs/fleet.md). Both directions go
/// through the accept loop that owns the list, as local bans do; nothing here is on a request's
/// path, and nothing on a request's path waits for the fleet.
extension Gateway {
    /// Calls `handler` on the accept loop for every ban and unban decided on this node
    /// (automatic or by an operator); not for those applied with ``applyShared(_:)``.
    public func onBanDecision(_ handler: @escaping @Sendable (SharedDecision) -> Void) async throws {
        let bans = self.bans
        try await bans.eventLoop.submit { bans.value.onDecision = handler }.get()
    }

    /// Calls `handler` on the accept loop for every mode an operator sets on this node (through
    /// the admin API, the dashboard or `rampart mode`); not for those applied with ``applyShared(_:)``.
    public func onModeDecision(_ handler: @escaping @Sendable (SharedDecision) -> Void) async throws {
        let detection = self.detection
        try await detection.eventLoop.submit {
            detection.value.onOperatorMode = { site, mode in handler(.mode(site: site, mode: mode?.rawValue ?? "auto", by: "operator")) }
        }.get()
    }

    /// Applies decisions made elsewhere in the fleet, in order: a ban extends this node's ban of
    /// the address when it ends later (the longest expiry wins), an unban lifts it, an operator's
    /// mode is forced here too (`auto` returns the site to automatic mode). Returns how many
    /// changed something.
    @discardableResult
    public func applyShared(_ decisions: [SharedDecision]) async throws -> Int {
        guard !decisions.isEmpty else { return 0 }
        let bans = self.bans
        let detection = self.detection
        return try await bans.eventLoop.submit {
            decisions.reduce(0) { count, decision in
                if case .mode(let site, let text, let by) = decision {
                    let mode = SiteMode(rawValue: text)
                    guard mode != nil || text == "auto" else { return count }
                    guard let current = detection.value.status().first(where: { $0.site == site }), current.override != mode else { return count }
                    let applied = detection.value.setOverride(site: site, mode: mode)
                    if applied { bans.value.loop.logger.notice("mode set by the fleet", metadata: ["site": "\(site)", "mode": "\(text)", "by": "\(by)"]) }
                    return count + (applied ? 1 : 0)
                }
                return count + (bans.value.applyShared(decision) ? 1 : 0)
            }
        }.get()
    }
}

/// One node's counts of one site for one second, as the fleet shares them: the counters of
/// ``TrafficSecond`` (sums are exact); the sketches (distinct sources and targets, heavy hitters)
/// stay on each node.
public struct FleetCounts: Sendable, Equatable, Codable {
    /// Request heads received; sent to an origin; answered from the cache.
    public var requests = 0, toOrigin = 0, cacheServed = 0
    /// Challenges issued; requests passed on a clearance; challengeable requests without one.
    public var challenged = 0, cleared = 0, uncleared = 0
    /// Refused by rate limits; not GET/HEAD; refused for a clearance over its own rate.
    public var limited = 0, nonGet = 0, clearanceLimited = 0
    /// Origin failures; refused because the origin queue was full.
    public var originErrors = 0, shed = 0

    /// Empty counts.
    public init() {}

    /// The counters of `s`.
    init(_ s: TrafficSecond) {
        (requests, toOrigin, cacheServed, challenged, cleared, uncleared) = (s.requests, s.toOrigin, s.cacheServed, s.challenged, s.cleared, s.uncleared)
        (limited, nonGet, clearanceLimited, originErrors, shed) = (s.limited, s.nonGet, s.clearanceLimited, s.originErrors, s.shed)
    }

    /// Adds `o`.
    public mutating func add(_ o: FleetCounts) {
        requests += o.requests; toOrigin += o.toOrigin; cacheServed += o.cacheServed; challenged += o.challenged
        cleared += o.cleared; uncleared += o.uncleared; limited += o.limited; nonGet += o.nonGet
        clearanceLimited += o.clearanceLimited; originErrors += o.originErrors; shed += o.shed
    }

    /// A second holding these counts and empty sketches.
    var second: TrafficSecond {
        var s = TrafficSecond()
        (s.requests, s.toOrigin, s.cacheServed, s.challenged, s.cleared, s.uncleared) = (requests, toOrigin, cacheServed, challenged, cleared, uncleared)
        (s.limited, s.nonGet, s.clearanceLimited, s.originErrors, s.shed) = (limited, nonGet, clearanceLimited, originErrors, shed)
        return s
    }
}

extension Gateway {
    /// Calls `handler` on the accept loop each second with this node's own counts per site.
    public func onTrafficSecond(_ handler: @escaping @Sendable ([String: FleetCounts]) -> Void) async throws {
        let detection = self.detection
        try await detection.eventLoop.submit {
            detection.value.onSecond = { merged in handler(merged.mapValues(FleetCounts.init)) }
        }.get()
    }

    /// The other nodes' last second per site, added to this node's own before detection sees it,
    /// until `until` (Unix seconds; stale sums expire rather than linger).
    public func setFleetTraffic(_ traffic: [String: FleetCounts], until: Int64) async throws {
        let detection = self.detection
        try await detection.eventLoop.submit {
            detection.value.fleetSeconds = (until, traffic.mapValues(\.second))
        }.get()
    }
}

extension BanRegistry {
    /// Applies one decision from the fleet; true when the list changed. Not reported back through
    /// ``onDecision`` (it came from the fleet).
    func applyShared(_ decision: SharedDecision) -> Bool {
        switch decision {
        case .ban(let address, let unixUntil, let reason, let by):
            guard let ip = IPAddress(address) else { return false }
            let now = Int64(loopNow)
            let remaining = Int64.saturatingProduct(Int64.saturatingDifference(unixUntil, unixNow()), 1_000_000_000)
            guard remaining > 0 else { return false }
            let until = Int64.saturatingSum(now, remaining)
            if let held = list.entry(ip), held.until >= until { return false }
            let wasBanned = list.isBanned(ip, now: now)
            list.restore(ip, until: until, level: list.entry(ip)?.level ?? 0, now: now)
            let text = by == "automatic" || by == "operator" ? reason : "\(reason) (from \(by))"
            noteShared(ip, reason: text, until: unixUntil, level: list.entry(ip)?.level ?? 0)
            kernel?.offer(.add(ip, seconds: Int(remaining / 1_000_000_000)))
            if !wasBanned { loop.logger.notice("source banned by the fleet", metadata: ["client": "\(ip)", "by": "\(by)", "reason": "\(reason)"]) }
            return true
        case .mode, .revoke, .rule, .unrule:
            return false
        case .unban(let address, let by):
            guard let ip = IPAddress(address) else { return false }
            let was = isBanned(ip)
            list.unban(ip)
            forgetShared(ip)
            if was {
                kernel?.offer(.remove(ip))
                loop.logger.notice("ban lifted by the fleet", metadata: ["client": "\(ip)", "by": "\(by)"])
            }
            return was
        }
    }

    private var loopNow: UInt64 { loop.eventLoop.now.uptimeNanoseconds }
}

extension AlertEvent {
    /// The alert sent when node `node` loses (`connected` false, with `reason`) or regains the
    /// fleet's database.
    public static func fleet(connected: Bool, node: String, reason: String) -> AlertEvent {
        AlertEvent(
            kind: connected ? .fleetRestored : .fleetDegraded, site: node, from: connected ? "degraded" : "connected",
            to: connected ? "connected" : "degraded", tier: "", reason: reason, manual: false, incident: nil
        )
    }
}
