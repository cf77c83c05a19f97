import RampartCore

/// What this node's detection holds above `normal`, per site, and when to write it to the fleet
/// (docs/fleet.md): a change at once, and every held mode again each third of its time to live, so
/// the others' leases never run out while the detector still holds it. Time is injected
/// (monotonic seconds).
struct RaisedModeRenewal: Sendable {
    /// One raised mode to write.
    struct Entry: Sendable, Equatable {
        var site: String
        var mode: SiteMode
        var tier: ChallengeTier
        var reason: String
    }

    /// One write: modes to (re)write, sites to remove, and whether anything changed (then the
    /// other nodes are woken at once instead of at their next read).
    struct Plan: Sendable, Equatable {
        var upsert: [Entry]
        var delete: [String]
        var changed: Bool
    }

    private(set) var held: [String: Entry] = [:]
    private var pending: Set<String> = []
    private var renewed = -Double.infinity

    /// The detector's automatic mode of `site` is now `mode` (with `tier`); `normal` withdraws it.
    mutating func set(site: String, mode: SiteMode, tier: ChallengeTier, reason: String) {
        if mode == .normal {
            guard held.removeValue(forKey: site) != nil else { return }
        } else {
            let entry = Entry(site: site, mode: mode, tier: tier, reason: reason)
            guard held[site].map({ ($0.mode, $0.tier) != (mode, tier) }) ?? true else { return }
            held[site] = entry
        }
        pending.insert(site)
    }

    /// What to write at `now` for a time to live of `ttl` seconds; nil when nothing is due.
    func plan(now: Double, ttl: Double) -> Plan? {
        let renewal = !held.isEmpty && now - renewed >= ttl / 3
        guard renewal || !pending.isEmpty else { return nil }
        let upsert = renewal ? held.values.sorted { $0.site < $1.site } : pending.sorted().compactMap { held[$0] }
        let delete = pending.filter { held[$0] == nil }.sorted()
        return Plan(upsert: upsert, delete: delete, changed: !pending.isEmpty)
    }

    /// `plan` was written at `now`.
    mutating func written(_ plan: Plan, now: Double) {
        for e in plan.upsert where held[e.site] == e { pending.remove(e.site) }
        for site in plan.delete where held[site] == nil { pending.remove(site) }
        if plan.upsert.count == held.count, !held.isEmpty { renewed = now }
    }

    /// After a reconnection: everything held is written again at the next plan (the database may
    /// have let it lapse meanwhile).
    mutating func reconnected() {
        renewed = -Double.infinity
    }
}
