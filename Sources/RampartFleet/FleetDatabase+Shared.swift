import Foundation
import Logging
import PostgresNIO
import RampartCore

/// The statements behind what a fleet shares beyond bans and modes: clearance revocations,
/// operators' runtime rules (both through the event log) and incidents (read in full every
/// couple of seconds: an incident is a record operators read, not a decision to enforce).
extension FleetDatabase {
    /// Publishes a revocation, a rule or a rule's removal; rows of `(event id, notify)`, none when
    /// the merged state made it a no-op (a revocation no longer than the one held, a rule older
    /// than the one held or already removed, a removal of a removed rule).
    func publishShared(_ decision: SharedDecision, node: String, decided: Int64) async throws -> PostgresRowSequence {
        switch decision {
        case .revoke(let site, let clearance, let until, let by):
            return try await connection.query("""
                WITH r AS (
                    INSERT INTO rampart_revocations AS cur (site, clearance, ends_at, node, actor)
                    VALUES (\(site), \(String(clearance)), \(until), \(node), \(by))
                    ON CONFLICT (site, clearance) DO UPDATE SET ends_at = EXCLUDED.ends_at, node = EXCLUDED.node, actor = EXCLUDED.actor
                    WHERE EXCLUDED.ends_at > cur.ends_at
                    RETURNING clearance
                ), e AS (
                    INSERT INTO rampart_events (node, kind, subject, ends_at, reason, actor)
                    SELECT \(node), 'revoke', clearance, \(until), \(site), \(by) FROM r RETURNING id
                )
                SELECT id, pg_notify('rampart_events', id::text) FROM e
                """, logger: logger)
        case .rule(let rule):
            let json = String(decoding: try JSONEncoder().encode(rule), as: UTF8.self)
            // A rule without an end is kept until removed (ends_at 0).
            return try await connection.query("""
                WITH r AS (
                    INSERT INTO rampart_rules AS cur (id, rule, ends_at, removed, decided, node)
                    VALUES (\(rule.id), \(json), \(rule.until), false, \(rule.decided), \(node))
                    ON CONFLICT (id) DO UPDATE SET rule = EXCLUDED.rule, ends_at = EXCLUDED.ends_at, decided = EXCLUDED.decided, node = EXCLUDED.node
                    WHERE NOT cur.removed AND cur.decided <= EXCLUDED.decided AND cur.rule <> EXCLUDED.rule
                    RETURNING id
                ), e AS (
                    INSERT INTO rampart_events (node, kind, subject, ends_at, reason, actor)
                    SELECT \(node), 'rule', id, \(rule.until), \(json), \(rule.by) FROM r RETURNING id
                )
                SELECT id, pg_notify('rampart_events', id::text) FROM e
                """, logger: logger)
        case .unrule(let id, let by):
            // Ids are never reused: a removal is final, its tombstone kept a day.
            return try await connection.query("""
                WITH r AS (
                    INSERT INTO rampart_rules AS cur (id, rule, ends_at, removed, decided, node)
                    VALUES (\(id), '', \(decided + 86_400), true, \(decided), \(node))
                    ON CONFLICT (id) DO UPDATE SET removed = true, ends_at = EXCLUDED.ends_at, decided = EXCLUDED.decided, node = EXCLUDED.node
                    WHERE NOT cur.removed
                    RETURNING id
                ), e AS (
                    INSERT INTO rampart_events (node, kind, subject, actor)
                    SELECT \(node), 'unrule', id, \(by) FROM r RETURNING id
                )
                SELECT id, pg_notify('rampart_events', id::text) FROM e
                """, logger: logger)
        case .ban, .unban, .mode:
            preconditionFailure("bans and modes are published by publish(_:node:decided:)")
        }
    }

    /// The decision an event of `kind` holds (nil when it cannot be read).
    static func sharedDecision(kind: String, subject: String, until: Int64, reason: String, actor: String) -> SharedDecision? {
        switch kind {
        case "revoke":
            return UInt64(subject).map { .revoke(site: reason, clearance: $0, until: until, by: actor) }
        case "rule":
            return (try? JSONDecoder().decode(OperatorRule.self, from: Data(reason.utf8))).map { .rule($0) }
        case "unrule":
            return .unrule(id: subject, by: actor)
        default:
            return nil
        }
    }

    /// Revocations still in force at `now` (a resynchronisation).
    func revocations(now: Int64) async throws -> [SharedDecision] {
        let rows = try await connection.query("SELECT site, clearance, ends_at, actor FROM rampart_revocations WHERE ends_at > \(now)", logger: logger)
        var out: [SharedDecision] = []
        for try await (site, clearance, until, actor) in rows.decode((String, String, Int64, String).self) {
            if let id = UInt64(clearance) { out.append(.revoke(site: site, clearance: id, until: until, by: actor)) }
        }
        return out
    }

    /// Rules in force at `now`, and removals (tombstones) as unrules (a resynchronisation).
    func rules(now: Int64) async throws -> [SharedDecision] {
        let rows = try await connection.query("""
            SELECT id, rule, removed FROM rampart_rules WHERE removed OR ends_at = 0 OR ends_at > \(now) ORDER BY decided
            """, logger: logger)
        var out: [SharedDecision] = []
        for try await (id, json, removed) in rows.decode((String, String, Bool).self) {
            if removed {
                out.append(.unrule(id: id, by: "fleet"))
            } else if let rule = try? JSONDecoder().decode(OperatorRule.self, from: Data(json.utf8)) {
                out.append(.rule(rule))
            }
        }
        return out
    }

    /// Deletes ended revocations, rules and tombstones (an hour after they ended), and fleet
    /// incidents older than the events kept.
    func pruneShared(now: Int64, days: Int = 7) async throws {
        try await connection.query("DELETE FROM rampart_revocations WHERE ends_at < \(now - 3600)", logger: logger)
        try await connection.query("DELETE FROM rampart_rules WHERE ends_at <> 0 AND ends_at < \(now - 3600)", logger: logger)
        try await connection.query("DELETE FROM rampart_incidents WHERE last_seen < \(now - Int64(max(1, days)) * 86_400)", logger: logger)
    }

    // MARK: - Incidents

    /// How close (seconds) a node's incident must start to a fleet incident of the same site
    /// (its start, or its last sign of life while open, or its end) to join it.
    static let incidentWindow: Int64 = 60

    /// Records `figures` of this node's incident (its number, site and start), joining the fleet
    /// incident of the same site whose window it falls in or opening one; returns the fleet
    /// incident's id. One transaction under an advisory lock, so two nodes opening at once make
    /// one incident.
    func shareIncident(node: String, site: String, figures: IncidentNodeFigures, now: Int64) async throws -> Int64 {
        let json = String(decoding: try JSONEncoder().encode(figures), as: UTF8.self)
        let window = Self.incidentWindow
        return try await connection.withTransaction(logger: logger) { c in
            try await c.query("SELECT pg_advisory_xact_lock(\(FleetSchema.lockKey + 1))", logger: logger)
            var fleetID: Int64?
            for try await id in try await c.query("""
                SELECT incident FROM rampart_incident_nodes WHERE node = \(node) AND local_id = \(figures.incident) AND started = \(figures.start)
                """, logger: logger).decode(Int64.self) { fleetID = id }
            if fleetID == nil {
                for try await id in try await c.query("""
                    SELECT id FROM rampart_incidents
                    WHERE site = \(site) AND started <= \(figures.start + window) AND COALESCE(ended, last_seen) >= \(figures.start - window)
                    ORDER BY id DESC LIMIT 1
                    """, logger: logger).decode(Int64.self) { fleetID = id }
            }
            if fleetID == nil {
                for try await id in try await c.query("""
                    INSERT INTO rampart_incidents (site, started, last_seen) VALUES (\(site), \(figures.start), \(now)) RETURNING id
                    """, logger: logger).decode(Int64.self) { fleetID = id }
            }
            guard let id = fleetID else { throw FleetIncidentError() }
            try await c.query("""
                INSERT INTO rampart_incident_nodes (incident, node, local_id, started, ended, figures)
                VALUES (\(id), \(node), \(figures.incident), \(figures.start), \(figures.end), \(json))
                ON CONFLICT (node, local_id, started) DO UPDATE SET ended = EXCLUDED.ended, figures = EXCLUDED.figures
                """, logger: logger)
            try await c.query("""
                UPDATE rampart_incidents SET started = LEAST(started, \(figures.start)), last_seen = GREATEST(last_seen, \(now)),
                    ended = CASE WHEN EXISTS (SELECT 1 FROM rampart_incident_nodes WHERE incident = \(id) AND ended IS NULL) THEN NULL
                                 ELSE (SELECT MAX(ended) FROM rampart_incident_nodes WHERE incident = \(id)) END
                WHERE id = \(id)
                """, logger: logger)
            return id
        }
    }

    private struct FleetIncidentError: Error, CustomStringConvertible {
        var description: String { "the fleet incident could not be opened" }
    }

    /// The newest `limit` fleet incidents with every node's figures, newest first.
    func incidents(limit: Int = 50) async throws -> [FleetIncident] {
        var found: [FleetIncident] = []
        for try await (id, site, started, ended) in try await connection.query("""
            SELECT id, site, started, ended FROM rampart_incidents ORDER BY id DESC LIMIT \(limit)
            """, logger: logger).decode((Int64, String, Int64, Int64?).self) {
            found.append(FleetIncident(id: id, site: site, start: started, end: ended, nodes: []))
        }
        guard let oldest = found.last?.id else { return [] }
        var nodes: [Int64: [IncidentNodeFigures]] = [:]
        for try await (incident, json) in try await connection.query("""
            SELECT incident, figures FROM rampart_incident_nodes WHERE incident >= \(oldest) ORDER BY node, started
            """, logger: logger).decode((Int64, String).self) {
            if let f = try? JSONDecoder().decode(IncidentNodeFigures.self, from: Data(json.utf8)) { nodes[incident, default: []].append(f) }
        }
        return found.map { i in
            var i = i
            i.nodes = nodes[i.id] ?? []
            return i
        }
    }
}
