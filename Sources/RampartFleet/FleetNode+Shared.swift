import Foundation
import Logging
import RampartCore
import RampartDataPlane

/// What a node keeps for the incidents it shares: its own traffic during each open incident.
struct IncidentTallies: Sendable {
    /// This node's figures per incident (its own number), counted from its own traffic only.
    var figures: [Int: IncidentNodeFigures] = [:]
    /// The site of each tallied incident.
    var sites: [Int: String] = [:]
    /// Incidents whose end reached the database (not shared again).
    var done: Set<Int> = []
    /// This node's last seconds (Unix seconds, counts per site), so an incident first seen up to
    /// ``keptSeconds`` after it opened still counts its first seconds.
    private var recent: [(at: Int64, counts: [String: IncidentCounts])] = []
    static let keptSeconds = 8
    /// The Unix second last added.
    private(set) var lastSecond: Int64 = 0

    /// Adds one second of this node's own counts (before the fleet's sums), taken at `at`, to the
    /// open incidents of their sites.
    mutating func add(_ counts: [String: IncidentCounts], at: Int64) {
        lastSecond = max(lastSecond, at)
        recent.append((at, counts))
        if recent.count > Self.keptSeconds { recent.removeFirst(recent.count - Self.keptSeconds) }
        for (id, site) in sites where figures[id]?.end == nil {
            guard let c = counts[site], var f = figures[id] else { continue }
            f.add(c)
            figures[id] = f
        }
    }

    /// Starts tallying incident `id` of `site` opened at `start`, with the seconds kept since then.
    mutating func open(_ id: Int, site: String, start: Int64, node: String) {
        var f = IncidentNodeFigures(node: node, incident: id, start: start, end: nil)
        for second in recent where second.at >= start {
            if let c = second.counts[site] { f.add(c) }
        }
        figures[id] = f
        sites[id] = site
    }
}

/// The counters of one site's second an incident's figures need (the sketches stay behind: eight
/// seconds of every site are kept).
struct IncidentCounts: Sendable, Equatable {
    var requests = 0, toOrigin = 0, challenged = 0, limited = 0, shed = 0, clearanceLimited = 0

    init(_ s: TrafficSecond) {
        (requests, toOrigin, challenged) = (s.requests, s.toOrigin, s.challenged)
        (limited, shed, clearanceLimited) = (s.limited, s.shed, s.clearanceLimited)
    }
}

extension IncidentNodeFigures {
    /// Adds one second of the node's own counts.
    mutating func add(_ c: IncidentCounts) {
        requests += c.requests
        refused += c.limited + c.shed + c.clearanceLimited
        challenged += c.challenged
        toOrigin += c.toOrigin
        peakRequestsPerSecond = max(peakRequestsPerSecond, c.requests)
    }
}

extension FleetNode {
    /// Follows this node's revocations and runtime rules into the outbox.
    func followSharedExtras(_ sink: AsyncStream<(SharedDecision, Int64)>.Continuation) {
        gateway.onRevocation { decision in sink.yield((decision, Int64(Date().timeIntervalSince1970))) }
        gateway.onRuleDecision { decision in sink.yield((decision, Int64(Date().timeIntervalSince1970))) }
    }

    /// Applies decisions from the fleet: bans and modes to the ban list and detection,
    /// revocations and rules to every event loop.
    @discardableResult
    func applyAll(_ decisions: [SharedDecision]) async throws -> Int {
        let extras = decisions.filter { !$0.isBan && !Self.isMode($0) }
        let rest = decisions.filter { $0.isBan || Self.isMode($0) }
        return try await gateway.applyShared(rest) + gateway.applySharedExtras(extras)
    }

    private static func isMode(_ d: SharedDecision) -> Bool {
        if case .mode = d { return true }
        return false
    }

    /// What a resynchronisation reads beyond bans and modes: revocations in force, rules and
    /// their removals.
    func sharedExtras(_ db: FleetDatabase, now: Int64) async throws -> [SharedDecision] {
        try await db.revocations(now: now) + db.rules(now: now)
    }

    /// Shares this node's open incidents (and the end of those that closed) and reads the fleet's
    /// incidents back for the admin API and reports. Every 2 s.
    func shareIncidents(_ db: FleetDatabase) async throws {
        let now = Int64(Date().timeIntervalSince1970)
        // Open incidents and those closed within the join window (an end not yet shared).
        let local = try await gateway.incidents().filter { $0.end == nil || $0.end! >= now - FleetDatabase.incidentWindow }
        let due = state.withLockedValue { s -> [IncidentNodeFigures] in
            for incident in local where s.incidents.figures[incident.id] == nil && !s.incidents.done.contains(incident.id) {
                s.incidents.open(incident.id, site: incident.site, start: incident.start, node: config.node)
            }
            var due: [IncidentNodeFigures] = []
            for incident in local {
                guard var f = s.incidents.figures[incident.id] else { continue }
                f.end = incident.end
                f.topSources = Array((incident.topRefusedSources ?? incident.topSources).prefix(5))
                s.incidents.figures[incident.id] = f
                due.append(f)
            }
            return due
        }
        for figures in due {
            guard let site = state.withLockedValue({ $0.incidents.sites[figures.incident] }) else { continue }
            _ = try await db.shareIncident(node: config.node, site: site, figures: figures, now: now)
            if figures.end != nil {
                state.withLockedValue { s in
                    s.incidents.figures[figures.incident] = nil
                    s.incidents.sites[figures.incident] = nil
                    s.incidents.done.insert(figures.incident)
                    if s.incidents.done.count > 1000 { s.incidents.done.remove(s.incidents.done.min()!) }
                }
            }
        }
        var mine: [Int: FleetIncident] = [:]
        for incident in try await db.incidents() {
            for part in incident.nodes where part.node == config.node { mine[part.incident] = incident }
        }
        gateway.setFleetIncidents(mine)
    }
}
