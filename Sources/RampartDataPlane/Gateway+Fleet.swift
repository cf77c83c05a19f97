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

extension Gateway {
    /// Calls `handler` on the accept loop `perSecond` times a second (1 to 10) with this node's own
    /// last second per site (a sliding window: the newest 1/`perSecond` s slices of traffic), before
    /// the fleet's counts are added. The detector still decides once a second, on the last full
    /// second.
    public func onTrafficWindow(perSecond: Int, _ handler: @escaping @Sendable ([String: TrafficSecond]) -> Void) async throws {
        let detection = self.detection
        try await detection.eventLoop.submit {
            detection.value.onWindow = handler
            detection.value.setSlices(perSecond)
        }.get()
    }

    /// The other nodes' last second per site, summed (``TrafficSummary/merge(into:)``), added to
    /// this node's own before detection sees it, for `validFor` seconds (stale sums expire rather
    /// than linger).
    public func setFleetTraffic(_ traffic: [String: TrafficSecond], validFor: Double) async throws {
        let detection = self.detection
        let until = NIODeadline.now() + .nanoseconds(Int64(validFor * 1e9))
        try await detection.eventLoop.submit {
            detection.value.fleetSeconds = (until, traffic)
        }.get()
    }

    /// Calls `handler` on the accept loop whenever this node's detection changes a site's
    /// automatic mode or tier (site, mode, tier, reason), and once at once for every site: the
    /// fleet shares those above `normal` with a time to live. Modes the fleet raised here are not
    /// reported (no echo).
    public func onAutomaticMode(_ handler: @escaping @Sendable (String, SiteMode, ChallengeTier, String) -> Void) async throws {
        let detection = self.detection
        try await detection.eventLoop.submit { detection.value.onAutomaticMode = handler }.get()
    }

    /// The modes the other nodes' detection raised and renew, as read in full from the fleet
    /// (each with its remaining seconds to live): each site is held at least at the strongest live
    /// one (an operator's mode still wins) until its lease runs out.
    public func setRaisedModes(_ read: [(site: String, raised: RaisedMode, remaining: Double)]) async throws {
        let detection = self.detection
        try await detection.eventLoop.submit { detection.value.setRaised(read) }.get()
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
