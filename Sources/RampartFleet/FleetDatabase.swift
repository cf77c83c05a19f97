import Logging
import PostgresNIO
import RampartCore

/// One shared event as read back from `rampart_events`.
struct FleetEvent: Sendable, Equatable {
    var id: Int64
    /// The node that published it.
    var node: String
    var decision: SharedDecision
}

/// A node as it last reported itself (`rampart_nodes`).
public struct FleetNodeRow: Sendable, Equatable, Codable {
    public var name: String
    /// Where its listeners are (host:port, comma separated).
    public var address: String
    /// Unix seconds of its start and of its last heartbeat.
    public var started: Int64
    public var heartbeat: Int64
    /// The last shared event it applied, and how far behind the newest one that is (events).
    public var lastEvent: Int64
    public var lagEvents: Int64
    /// Decisions it holds in its outbox.
    public var outbox: Int
    /// Requests per second it received in its last second.
    public var requestsPerSecond: Double
    /// Its last second per site, as it last published it (empty when it published none lately).
    public var sites: [FleetSiteRates] = []
}

/// One node's last second of one site, for the operator's view of the fleet.
public struct FleetSiteRates: Sendable, Equatable, Codable {
    /// The site's name.
    public var site: String
    /// Requests received, sent to an origin, answered from the cache, challenged, refused by rate
    /// limits, per second (the node's last second).
    public var requests: Int
    public var toOrigin: Int
    public var cacheServed: Int
    public var challenged: Int
    public var limited: Int
    /// The mode and tier this node's detection raised for the site and renews (nil: none).
    public var raisedMode: String?
    public var raisedTier: String?

    init(site: String, _ s: TrafficSummary, raised: (mode: SiteMode, tier: ChallengeTier)?) {
        self.site = site
        (requests, toOrigin, cacheServed, challenged, limited) = (s.requests, s.toOrigin, s.cacheServed, s.challenged, s.limited)
        raisedMode = raised?.mode.rawValue
        raisedTier = raised?.tier.rawValue
    }
}

/// The fleet's statements, on one connection. Every write is one statement (atomic without an
/// explicit transaction) that also sends `NOTIFY rampart_events` with the new event's id.
struct FleetDatabase {
    let connection: PostgresConnection
    let logger: Logger
    /// The NOTIFY channel.
    static let channel = "rampart_events"

    /// Publishes a ban or unban decided on `node` at `decided` (Unix seconds). Returns the event
    /// id, or nil when the merged state made it a no-op: a ban no longer than the one in force, a
    /// ban decided before a later unban, an unban decided before a later ban.
    @discardableResult
    func publish(_ decision: SharedDecision, node: String, decided: Int64) async throws -> Int64? {
        let rows: PostgresRowSequence
        switch decision {
        case .ban(let address, let until, let reason, let by):
            rows = try await connection.query("""
                WITH b AS (
                    INSERT INTO rampart_bans AS cur (address, ends_at, reason, actor, node, lifted, decided)
                    VALUES (\(address), \(until), \(reason), \(by), \(node), false, \(decided))
                    ON CONFLICT (address) DO UPDATE SET
                        ends_at = EXCLUDED.ends_at, reason = EXCLUDED.reason, actor = EXCLUDED.actor,
                        node = EXCLUDED.node, lifted = false, decided = GREATEST(cur.decided, EXCLUDED.decided)
                    WHERE (cur.lifted AND cur.decided <= EXCLUDED.decided)
                       OR (NOT cur.lifted AND EXCLUDED.ends_at > cur.ends_at)
                    RETURNING address
                ), e AS (
                    INSERT INTO rampart_events (node, kind, subject, ends_at, reason, actor)
                    SELECT \(node), 'ban', address, \(until), \(reason), \(by) FROM b RETURNING id
                )
                SELECT id, pg_notify('rampart_events', id::text) FROM e
                """, logger: logger)
        case .unban(let address, let by):
            // The tombstone is kept a day past the ban it lifted, then pruned.
            rows = try await connection.query("""
                WITH b AS (
                    INSERT INTO rampart_bans AS cur (address, ends_at, reason, actor, node, lifted, decided)
                    VALUES (\(address), \(decided + 86_400), '', \(by), \(node), true, \(decided))
                    ON CONFLICT (address) DO UPDATE SET
                        ends_at = GREATEST(cur.ends_at, EXCLUDED.ends_at), actor = EXCLUDED.actor,
                        node = EXCLUDED.node, lifted = true, decided = EXCLUDED.decided
                    WHERE cur.decided <= EXCLUDED.decided
                    RETURNING address
                ), e AS (
                    INSERT INTO rampart_events (node, kind, subject, actor)
                    SELECT \(node), 'unban', address, \(by) FROM b RETURNING id
                )
                SELECT id, pg_notify('rampart_events', id::text) FROM e
                """, logger: logger)
        case .mode(let site, let mode, let by):
            rows = try await connection.query("""
                WITH m AS (
                    INSERT INTO rampart_modes AS cur (site, mode, actor, node, decided)
                    VALUES (\(site), \(mode), \(by), \(node), \(decided))
                    ON CONFLICT (site) DO UPDATE SET mode = EXCLUDED.mode, actor = EXCLUDED.actor,
                        node = EXCLUDED.node, decided = EXCLUDED.decided
                    WHERE cur.decided <= EXCLUDED.decided
                    RETURNING site
                ), e AS (
                    INSERT INTO rampart_events (node, kind, subject, reason, actor)
                    SELECT \(node), 'mode', site, \(mode), \(by) FROM m RETURNING id
                )
                SELECT id, pg_notify('rampart_events', id::text) FROM e
                """, logger: logger)
        case .revoke, .rule, .unrule:
            rows = try await publishShared(decision, node: node, decided: decided)
        }
        for try await (id, _) in rows.decode((Int64, String).self) { return id }
        return nil
    }

    /// Events after `id`, oldest first, at most `limit`.
    func events(after id: Int64, limit: Int = 1000) async throws -> [FleetEvent] {
        let rows = try await connection.query("""
            SELECT id, node, kind, subject, ends_at, reason, actor FROM rampart_events
            WHERE id > \(id) ORDER BY id LIMIT \(limit)
            """, logger: logger)
        var out: [FleetEvent] = []
        for try await (id, node, kind, subject, until, reason, actor) in rows.decode((Int64, String, String, String, Int64, String, String).self) {
            switch kind {
            case "ban": out.append(FleetEvent(id: id, node: node, decision: .ban(address: subject, until: until, reason: reason, by: actor)))
            case "unban": out.append(FleetEvent(id: id, node: node, decision: .unban(address: subject, by: actor)))
            case "mode": out.append(FleetEvent(id: id, node: node, decision: .mode(site: subject, mode: reason, by: actor)))
            case "revoke", "rule", "unrule":
                if let d = Self.sharedDecision(kind: kind, subject: subject, until: until, reason: reason, actor: actor) { out.append(FleetEvent(id: id, node: node, decision: d)) }
            default: continue  // a kind from a newer node: skipped, not fatal
            }
        }
        return out
    }

    /// The newest event id (0 when none).
    func newestEvent() async throws -> Int64 {
        for try await id in try await connection.query("SELECT COALESCE(MAX(id), 0)::int8 FROM rampart_events", logger: logger).decode(Int64.self) {
            return id
        }
        return 0
    }

    /// The merged ban state still in force at `now` (Unix seconds), tombstones as unbans.
    func bans(now: Int64) async throws -> [SharedDecision] {
        let rows = try await connection.query("""
            SELECT address, ends_at, reason, actor, lifted FROM rampart_bans WHERE ends_at > \(now)
            """, logger: logger)
        var out: [SharedDecision] = []
        for try await (address, until, reason, actor, lifted) in rows.decode((String, Int64, String, String, Bool).self) {
            out.append(lifted ? .unban(address: address, by: actor) : .ban(address: address, until: until, reason: reason, by: actor))
        }
        return out
    }

    /// Every site's last operator mode.
    func modes() async throws -> [SharedDecision] {
        let rows = try await connection.query("SELECT site, mode, actor FROM rampart_modes", logger: logger)
        var out: [SharedDecision] = []
        for try await (site, mode, actor) in rows.decode((String, String, String).self) {
            out.append(.mode(site: site, mode: mode, by: actor))
        }
        return out
    }

    /// The merged state of what `decision` is about, nil when none is kept.
    func merged(of decision: SharedDecision) async throws -> SharedDecision? {
        if case .revoke = decision { return nil }
        if case .rule = decision { return nil }
        if case .unrule = decision { return nil }
        guard decision.isBan else {
            let rows = try await connection.query("SELECT mode, actor FROM rampart_modes WHERE site = \(decision.subject)", logger: logger)
            for try await (mode, actor) in rows.decode((String, String).self) { return .mode(site: decision.subject, mode: mode, by: actor) }
            return nil
        }
        return try await ban(of: decision.subject)
    }

    /// The merged state of one address (a ban, a tombstone as an unban), nil when none is kept.
    func ban(of address: String) async throws -> SharedDecision? {
        let rows = try await connection.query("""
            SELECT ends_at, reason, actor, lifted FROM rampart_bans WHERE address = \(address)
            """, logger: logger)
        for try await (until, reason, actor, lifted) in rows.decode((Int64, String, String, Bool).self) {
            return lifted ? .unban(address: address, by: actor) : .ban(address: address, until: until, reason: reason, by: actor)
        }
        return nil
    }

    /// Publishes this node's last second of traffic (`counts`, JSON: site -> ``TrafficSummary``)
    /// taken at `now` (Unix seconds); `updated` is the database's clock.
    func publishTraffic(node: String, now: Int64, counts: String) async throws {
        try await connection.query("""
            INSERT INTO rampart_traffic (node, at, counts, updated) VALUES (\(node), \(now), \(counts), now())
            ON CONFLICT (node) DO UPDATE SET at = EXCLUDED.at, counts = EXCLUDED.counts, updated = now()
            """, logger: logger)
    }

    /// Every node's last second of traffic written within `maxAge` seconds (the database's clock):
    /// node and JSON document.
    func traffic(maxAge: Double) async throws -> [(node: String, counts: String)] {
        var out: [(node: String, counts: String)] = []
        let rows = try await connection.query("""
            SELECT node, counts FROM rampart_traffic WHERE updated > now() - make_interval(secs => \(maxAge))
            """, logger: logger)
        for try await (node, counts) in rows.decode((String, String).self) { out.append((node, counts)) }
        return out
    }

    /// Writes this node's raised modes with `ttl` seconds to live (the database's clock) and
    /// removes those it no longer holds; with `announce`, wakes every node (NOTIFY) so the change
    /// is applied at once rather than at the next read.
    func publishRaised(node: String, _ plan: RaisedModeRenewal.Plan, ttl: Double, announce: Bool) async throws {
        for r in plan.upsert {
            try await connection.query("""
                INSERT INTO rampart_raised_modes (site, node, mode, tier, reason, expires)
                VALUES (\(r.site), \(node), \(r.mode.rawValue), \(r.tier.rawValue), \(r.reason), now() + make_interval(secs => \(ttl)))
                ON CONFLICT (site, node) DO UPDATE SET mode = EXCLUDED.mode, tier = EXCLUDED.tier,
                    reason = EXCLUDED.reason, expires = EXCLUDED.expires
                """, logger: logger)
        }
        for site in plan.delete {
            try await connection.query("DELETE FROM rampart_raised_modes WHERE site = \(site) AND node = \(node)", logger: logger)
        }
        if announce { try await connection.query("SELECT pg_notify('rampart_events', '0')", logger: logger) }
    }

    /// Every live raised mode (expiry after the database's now), with its remaining seconds.
    func raisedModes() async throws -> [(site: String, raised: RaisedMode, remaining: Double)] {
        let rows = try await connection.query("""
            SELECT site, node, mode, tier, reason, EXTRACT(EPOCH FROM expires - now())::float8 FROM rampart_raised_modes
            WHERE expires > now()
            """, logger: logger)
        var out: [(site: String, raised: RaisedMode, remaining: Double)] = []
        for try await (site, node, mode, tier, reason, remaining) in rows.decode((String, String, String, String, String, Double).self) {
            guard let m = SiteMode(rawValue: mode), let t = ChallengeTier(rawValue: tier) else { continue }  // from a newer node
            out.append((site, RaisedMode(node: node, mode: m, tier: t, reason: reason), remaining))
        }
        return out
    }

    /// Records this node's heartbeat.
    func heartbeat(node: String, address: String, started: Int64, now: Int64, lastEvent: Int64, outbox: Int, requestsPerSecond: Double) async throws {
        try await connection.query("""
            INSERT INTO rampart_nodes (name, address, started, heartbeat, last_event, outbox, requests_per_second)
            VALUES (\(node), \(address), \(started), \(now), \(lastEvent), \(outbox), \(requestsPerSecond))
            ON CONFLICT (name) DO UPDATE SET address = EXCLUDED.address, started = EXCLUDED.started,
                heartbeat = EXCLUDED.heartbeat, last_event = EXCLUDED.last_event, outbox = EXCLUDED.outbox,
                requests_per_second = EXCLUDED.requests_per_second
            """, logger: logger)
    }

    /// Every node that ever joined, with how far behind the newest event each is.
    func nodes() async throws -> [FleetNodeRow] {
        let newest = try await newestEvent()
        let rows = try await connection.query("""
            SELECT name, address, started, heartbeat, last_event, outbox, requests_per_second FROM rampart_nodes ORDER BY name
            """, logger: logger)
        var out: [FleetNodeRow] = []
        for try await (name, address, started, heartbeat, last, outbox, rate) in rows.decode((String, String, Int64, Int64, Int64, Int32, Double).self) {
            out.append(FleetNodeRow(name: name, address: address, started: started, heartbeat: heartbeat, lastEvent: last, lagEvents: max(0, newest - last), outbox: Int(outbox), requestsPerSecond: rate))
        }
        return out
    }

    /// Deletes events older than `days` and ban rows (and tombstones) that ended over an hour ago.
    func prune(days: Int, now: Int64) async throws {
        try await connection.query("DELETE FROM rampart_events WHERE at < now() - \(Double(days)) * interval '1 day'", logger: logger)
        try await connection.query("DELETE FROM rampart_bans WHERE ends_at < \(now - 3600)", logger: logger)
        try await connection.query("DELETE FROM rampart_raised_modes WHERE expires < now() - interval '1 hour'", logger: logger)
        try await pruneShared(now: now, days: days)
    }
}
