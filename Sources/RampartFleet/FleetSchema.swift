import Logging
import PostgresNIO

/// The fleet's tables in PostgreSQL, created and migrated by Rampart itself.
///
/// Migrations are numbered and applied in order inside one transaction that first takes a
/// transaction-scoped advisory lock: nodes starting at once queue on the lock, and each finds the
/// versions the first one applied in `rampart_schema`. A node never changes a migration that has
/// shipped; a new version appends one.
enum FleetSchema {
    /// The advisory lock key (any 64-bit constant shared by every node: "rampart" in ASCII).
    static let lockKey: Int64 = 0x72_61_6D_70_61_72_74

    /// Each migration: its version and its statements.
    static let migrations: [(version: Int, statements: [String])] = [
        (1, [
            // The append-only log every node follows; NOTIFY carries only the new id.
            """
            CREATE TABLE rampart_events (
                id BIGSERIAL PRIMARY KEY,
                at TIMESTAMPTZ NOT NULL DEFAULT now(),
                node TEXT NOT NULL,
                kind TEXT NOT NULL,
                subject TEXT NOT NULL,
                ends_at BIGINT NOT NULL DEFAULT 0,
                reason TEXT NOT NULL DEFAULT '',
                actor TEXT NOT NULL DEFAULT ''
            )
            """,
            "CREATE INDEX rampart_events_at ON rampart_events (at)",
            // Bans as merged: the longest expiry wins; an unban stays as a tombstone (lifted) so a
            // ban decided before it, replayed late from an outbox, does not come back.
            """
            CREATE TABLE rampart_bans (
                address TEXT PRIMARY KEY,
                ends_at BIGINT NOT NULL,
                reason TEXT NOT NULL,
                actor TEXT NOT NULL,
                node TEXT NOT NULL,
                lifted BOOLEAN NOT NULL DEFAULT false,
                decided BIGINT NOT NULL
            )
            """,
            // Every node's heartbeat, for the operator's view of the fleet.
            """
            CREATE TABLE rampart_nodes (
                name TEXT PRIMARY KEY,
                address TEXT NOT NULL,
                started BIGINT NOT NULL,
                heartbeat BIGINT NOT NULL,
                last_event BIGINT NOT NULL DEFAULT 0,
                outbox INT NOT NULL DEFAULT 0,
                requests_per_second DOUBLE PRECISION NOT NULL DEFAULT 0
            )
            """,
        ]),
        (2, [
            // Operators' modes per site, the last decision winning (`auto`: back to automatic).
            """
            CREATE TABLE rampart_modes (
                site TEXT PRIMARY KEY,
                mode TEXT NOT NULL,
                actor TEXT NOT NULL,
                node TEXT NOT NULL,
                decided BIGINT NOT NULL
            )
            """,
        ]),
        (3, [
            // The clearance signing key every node uses (FleetSigningKey); `changed` is when the
            // key file it came from last changed, so a rotated key replaces an older one.
            """
            CREATE TABLE rampart_keys (
                id INT PRIMARY KEY,
                secret BYTEA NOT NULL,
                node TEXT NOT NULL,
                changed BIGINT NOT NULL
            )
            """,
        ]),
        (4, [
            // Each node's last second of traffic, per site (JSON: site -> counts), for the fleet's sums.
            """
            CREATE TABLE rampart_traffic (
                node TEXT PRIMARY KEY,
                at BIGINT NOT NULL,
                counts TEXT NOT NULL
            )
            """,
        ]),
        (5, [
            // Modes raised by a node's detection, each until `expires` (the database's clock)
            // unless the node renews it; not events: they lapse instead of being replayed.
            """
            CREATE TABLE rampart_raised_modes (
                site TEXT NOT NULL,
                node TEXT NOT NULL,
                mode TEXT NOT NULL,
                tier TEXT NOT NULL,
                reason TEXT NOT NULL DEFAULT '',
                expires TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (site, node)
            )
            """,
            // When each traffic summary was written, by the database's clock (published several
            // times a second, so whole Unix seconds of the node's clock are too coarse).
            "ALTER TABLE rampart_traffic ADD COLUMN updated TIMESTAMPTZ NOT NULL DEFAULT now()",
        ]),
        (6, [
            // Revoked clearances (by site and clearance id) until they would have expired anyway.
            """
            CREATE TABLE rampart_revocations (
                site TEXT NOT NULL,
                clearance TEXT NOT NULL,
                ends_at BIGINT NOT NULL,
                node TEXT NOT NULL,
                actor TEXT NOT NULL,
                PRIMARY KEY (site, clearance)
            )
            """,
            // Operators' runtime rules (JSON), removals kept as tombstones for a day.
            """
            CREATE TABLE rampart_rules (
                id TEXT PRIMARY KEY,
                rule TEXT NOT NULL,
                ends_at BIGINT NOT NULL,
                removed BOOLEAN NOT NULL DEFAULT false,
                decided BIGINT NOT NULL,
                node TEXT NOT NULL
            )
            """,
            // One incident per site and attack across the fleet, and each node's part of it.
            """
            CREATE TABLE rampart_incidents (
                id BIGSERIAL PRIMARY KEY,
                site TEXT NOT NULL,
                started BIGINT NOT NULL,
                last_seen BIGINT NOT NULL,
                ended BIGINT
            )
            """,
            "CREATE INDEX rampart_incidents_site ON rampart_incidents (site, started)",
            """
            CREATE TABLE rampart_incident_nodes (
                incident BIGINT NOT NULL REFERENCES rampart_incidents (id) ON DELETE CASCADE,
                node TEXT NOT NULL,
                local_id INT NOT NULL,
                started BIGINT NOT NULL,
                ended BIGINT,
                figures TEXT NOT NULL,
                PRIMARY KEY (node, local_id, started)
            )
            """,
            "CREATE INDEX rampart_incident_nodes_incident ON rampart_incident_nodes (incident)",
        ]),
    ]

    /// The newest version this build knows.
    static var latest: Int { migrations.map(\.version).max() ?? 0 }

    /// Brings the schema up to date; returns the versions applied now (empty when another node
    /// did it first).
    @discardableResult
    static func migrate(_ connection: PostgresConnection, logger: Logger) async throws -> [Int] {
        try await connection.withTransaction(logger: logger) { c in
            try await c.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger)
            try await c.query("CREATE TABLE IF NOT EXISTS rampart_schema (version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())", logger: logger)
            var done = Set<Int>()
            for try await version in try await c.query("SELECT version FROM rampart_schema", logger: logger).decode(Int.self) {
                done.insert(version)
            }
            if let newest = done.max(), newest > latest {
                logger.warning("the fleet database has a newer schema than this node knows; upgrade this node", metadata: ["database": "\(newest)", "node": "\(latest)"])
            }
            var applied: [Int] = []
            for m in migrations.sorted(by: { $0.version < $1.version }) where !done.contains(m.version) {
                for statement in m.statements {
                    try await c.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await c.query("INSERT INTO rampart_schema (version) VALUES (\(m.version))", logger: logger)
                applied.append(m.version)
            }
            return applied
        }
    }
}
