/// A site's mode raised by one node's detection, shared with the fleet for a time to live
/// (docs/fleet.md): the node renews it while its detector holds it, and it lapses when no one does.
public struct RaisedMode: Sendable, Equatable {
    /// The node whose detector raised it.
    public var node: String
    /// The mode and challenge tier it raised the site to.
    public var mode: SiteMode
    public var tier: ChallengeTier
    /// The detector's words for why.
    public var reason: String

    /// `node`'s detection raised the site to `mode` with `tier`, for `reason`.
    public init(node: String, mode: SiteMode, tier: ChallengeTier, reason: String) {
        (self.node, self.mode, self.tier, self.reason) = (node, mode, tier, reason)
    }

    /// True when `self` defends harder than `o`: a higher mode, else a higher tier (ties by node
    /// name, so every node picks the same one).
    public func isStronger(than o: RaisedMode) -> Bool {
        if mode != o.mode { return mode > o.mode }
        if tier != o.tier { return tier > o.tier }
        return node < o.node
    }
}

/// The modes the other nodes' detection raised, each held until its lease runs out, and the
/// strongest live one per site. Time is injected (monotonic seconds), so expiry is tested without
/// sleeping; the leases come from full reads of the fleet's table, each replacing the last, and
/// lapse on their own while the database is unreachable.
public struct RaisedModeLeases: Sendable {
    private struct Lease: Sendable {
        var raised: RaisedMode
        var expires: Double
    }

    /// Site -> node -> lease.
    private var leases: [String: [String: Lease]] = [:]

    /// No leases.
    public init() {}

    /// Replaces every lease with those of a full read: each `remaining` seconds from `now`.
    public mutating func replace(with read: [(site: String, raised: RaisedMode, remaining: Double)], now: Double) {
        leases = [:]
        for entry in read where entry.remaining > 0 {
            leases[entry.site, default: [:]][entry.raised.node] = Lease(raised: entry.raised, expires: now + entry.remaining)
        }
    }

    /// The strongest raised mode of each site whose lease is still running at `now`.
    public func strongest(now: Double) -> [String: RaisedMode] {
        var out: [String: RaisedMode] = [:]
        for (site, byNode) in leases {
            for lease in byNode.values where lease.expires > now {
                if let held = out[site], !lease.raised.isStronger(than: held) { continue }
                out[site] = lease.raised
            }
        }
        return out
    }

    /// Forgets the leases that ran out by `now`.
    public mutating func expire(now: Double) {
        for site in Array(leases.keys) {
            leases[site] = leases[site]?.filter { $0.value.expires > now }
            if leases[site]?.isEmpty == true { leases[site] = nil }
        }
    }

    /// True when no lease is held.
    public var isEmpty: Bool { leases.isEmpty }
}

/// The mode a site is in given what an operator forced, what its own detector chose and the
/// strongest mode the fleet's detection raised: the operator wins; otherwise the stronger of the
/// two automatic ones (the tier too, unless the config fixes it). Pure, for the detection service.
public func modeInForce(
    override: SiteMode?, automatic: SiteMode, tier: ChallengeTier, fixedTier: ChallengeTier?, raised: RaisedMode?
) -> (mode: SiteMode, tier: ChallengeTier) {
    if let override { return (override, tier) }
    guard let raised else { return (automatic, tier) }
    return (max(automatic, raised.mode), fixedTier ?? max(tier, raised.tier))
}

extension ModeChange {
    /// A change of the mode in force that the data plane works out itself (a mode the fleet raised
    /// coming or lapsing, on top of the controller's own).
    public static func inForce(from: SiteMode, to: SiteMode, tier: ChallengeTier, at: Int64, reason: String, manual: Bool) -> ModeChange {
        ModeChange(from: from, to: to, tier: tier, at: at, reason: reason, manual: manual)
    }
}
