import NIOConcurrencyHelpers
import NIOCore
import RampartCore

/// Operators' runtime rules, and the fleet's ways in and out of them, of clearance revocations
/// and of incidents (docs/fleet.md). Rules work without a fleet too; a fleet shares them. Nothing
/// here is on a request's path except the compiled ``OperatorRuleSet`` each loop holds.
public struct SharedState: Sendable {
    /// Runtime rules by id.
    var rules: [String: OperatorRule] = [:]
    /// Told of every rule added or removed here (not of those applied from the fleet).
    var onRule: (@Sendable (SharedDecision) -> Void)?
    /// Told of every clearance revoked here (not of those applied from the fleet).
    var onRevocation: (@Sendable (SharedDecision) -> Void)?
    /// The fleet's incidents, by this node's incident number.
    var fleetIncidents: [Int: FleetIncident] = [:]
}

extension LoopContext {
    /// Tells the fleet (when there is one) that `key` of `site` was revoked on this loop; the
    /// revocation lasts the site's clearance lifetime, the longest the clearance could still live.
    func reportRevocation(site: String, key: IPAddress, to shared: NIOLockedValueBox<SharedState>) {
        guard let handler = shared.withLockedValue({ $0.onRevocation }) else { return }
        let ttl = sites.first { $0.name == site }?.config.challenge.clearanceTTL.nanoseconds ?? 0
        handler(.revoke(site: site, clearance: key.low, until: unixNow() + max(1, ttl / 1_000_000_000), by: "automatic"))
    }

    /// Revokes clearance `key` of `site` until `until` (Unix seconds), told by the fleet.
    func revoke(site: String, key: IPAddress, until: Int64) {
        guard let runtime = sites.first(where: { $0.name == site }) else { return }
        let now = Int64(eventLoop.now.uptimeNanoseconds)
        let remaining = Int64.saturatingProduct(Int64.saturatingDifference(until, unixNow()), 1_000_000_000)
        guard remaining > 0 else { return }
        let end = Int64.saturatingSum(now, remaining)
        if let held = runtime.defence.revoked.entry(key), held.until >= end, runtime.defence.revoked.isBanned(key, now: now) { return }
        runtime.defence.revoked.restore(key, until: end, level: 0, now: now)
    }
}

extension Gateway {
    // MARK: - Runtime rules

    /// Every runtime rule in force, oldest decision first.
    public func rules() -> [OperatorRule] {
        let now = unixNow()
        return shared.withLockedValue { $0.rules.values.filter { $0.inForce(at: now) } }.sorted { ($0.decided, $0.id) < ($1.decided, $1.id) }
    }

    /// Adds (or replaces, by id) a rule decided on this node and tells the fleet. False when
    /// ``OperatorRule/capacity`` rules are kept already.
    public func addRule(_ rule: OperatorRule) -> Bool {
        let (added, handler) = shared.withLockedValue { s -> (Bool, (@Sendable (SharedDecision) -> Void)?) in
            s.rules = s.rules.filter { $0.value.inForce(at: unixNow()) }
            guard s.rules[rule.id] != nil || s.rules.count < OperatorRule.capacity else { return (false, nil) }
            s.rules[rule.id] = rule
            return (true, s.onRule)
        }
        guard added else { return false }
        publishRules()
        logger.notice("runtime rule added", metadata: ["rule": "\(rule.id)", "action": "\(rule.action.rawValue)", "block": "\(rule.cidr)", "site": "\(rule.site ?? "*")"])
        handler?(.rule(rule))
        return true
    }

    /// Removes rule `id` on this node and tells the fleet; false when there is none.
    public func removeRule(id: String) -> Bool {
        let (removed, handler) = shared.withLockedValue { s in (s.rules.removeValue(forKey: id) != nil, s.onRule) }
        guard removed else { return false }
        publishRules()
        logger.notice("runtime rule removed", metadata: ["rule": "\(id)"])
        handler?(.unrule(id: id, by: "operator"))
        return true
    }

    /// Calls `handler` for every rule added or removed on this node.
    public func onRuleDecision(_ handler: @escaping @Sendable (SharedDecision) -> Void) {
        shared.withLockedValue { $0.onRule = handler }
    }

    /// Calls `handler` (on an event loop) for every clearance this node revokes.
    public func onRevocation(_ handler: @escaping @Sendable (SharedDecision) -> Void) {
        shared.withLockedValue { $0.onRevocation = handler }
    }

    /// Applies the revocations and rule changes made elsewhere in the fleet (other decisions are
    /// ignored): a revocation holds on every event loop until it ends, a rule is added or replaced
    /// unless this node holds a later decision on the same id, an unrule removes it. Returns how
    /// many changed something.
    @discardableResult
    public func applySharedExtras(_ decisions: [SharedDecision]) -> Int {
        var changed = 0
        var rulesChanged = false
        for decision in decisions {
            switch decision {
            case .revoke(let site, let clearance, let until, _):
                guard until > unixNow() else { continue }
                let key = Clearance(level: .cookie, expires: 0, id: clearance, v4: nil, v6: nil).key
                for bound in contexts.values {
                    bound.eventLoop.execute { bound.value.revoke(site: site, key: key, until: until) }
                }
                changed += 1
            case .rule(let rule):
                let applied = shared.withLockedValue { s -> Bool in
                    if let held = s.rules[rule.id], held.decided > rule.decided || held == rule { return false }
                    guard rule.inForce(at: unixNow()), s.rules[rule.id] != nil || s.rules.count < OperatorRule.capacity else { return false }
                    s.rules[rule.id] = rule
                    return true
                }
                if applied { changed += 1; rulesChanged = true }
            case .unrule(let id, _):
                if shared.withLockedValue({ $0.rules.removeValue(forKey: id) != nil }) { changed += 1; rulesChanged = true }
            case .ban, .unban, .mode:
                continue
            }
        }
        if rulesChanged { publishRules() }
        return changed
    }

    /// Replaces the runtime rules with the fleet's full list (a resynchronisation).
    public func replaceRules(_ rules: [OperatorRule]) {
        shared.withLockedValue { s in
            s.rules = Dictionary(rules.suffix(OperatorRule.capacity).map { ($0.id, $0) }, uniquingKeysWith: { $1 })
        }
        publishRules()
    }

    /// Puts back the rules stored before a restart (those still in force), before any fleet
    /// resynchronisation replaces them with the fleet's list.
    func restoreStoredRules() {
        guard let stored = try? storedRulesFromStore(), !stored.isEmpty else { return }
        let now = unixNow()
        let live = stored.filter { $0.inForce(at: now) }
        shared.withLockedValue { s in
            s.rules = Dictionary(live.suffix(OperatorRule.capacity).map { ($0.id, $0) }, uniquingKeysWith: { $1 })
        }
        publishRules(store: false)
        logger.notice("runtime rules restored", metadata: ["rules": "\(live.count)"])
    }

    /// Compiles the rules, hands every loop its copy and (unless told not to) stores them, so
    /// that a restart keeps them.
    private func publishRules(store: Bool = true) {
        let rules = shared.withLockedValue { Array($0.rules.values) }
        if store { storeRules(rules) }
        let set = OperatorRuleSet(rules)
        for bound in contexts.values {
            bound.eventLoop.execute { bound.value.operatorRules = set }
        }
    }

    // MARK: - Incidents

    /// The fleet's incidents, by this node's incident number: ``incidents()`` and
    /// ``incident(id:)`` carry them in ``Incident/fleet``.
    public func setFleetIncidents(_ incidents: [Int: FleetIncident]) {
        shared.withLockedValue { $0.fleetIncidents = incidents }
    }

    /// `incidents` with their fleet incident, when known.
    func withFleet(_ incidents: [Incident]) -> [Incident] {
        let fleet = shared.withLockedValue { $0.fleetIncidents }
        guard !fleet.isEmpty else { return incidents }
        return incidents.map { i in
            var i = i
            i.fleet = fleet[i.id]
            return i
        }
    }
}
