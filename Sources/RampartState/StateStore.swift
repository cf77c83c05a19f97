import Foundation
import GRDB
import Logging
import RampartCore


/// Local state in one SQLite file (`state.sqlite` in the state folder): bans, incidents, the
/// operators' mode overrides and runtime rules, so a restart neither forgives attackers, forgets
/// what happened, drops a site out of the mode an operator put it in, nor lifts a rule.
///
/// Writes go through one serial queue, never on an event loop. A failing database (disk full,
/// folder read-only, file locked by another process) costs no request: the gateway keeps running
/// on its in-memory state, the failed writes wait in ``PendingWrites`` (the latest per ban, incident
/// or site, bounded) and are written again every `retryInterval` until the database takes them.
/// ``health`` says how it goes, for the log, `/metrics` and the dashboard.
public final class StateStore: Sendable {
    private let db: DatabaseQueue
    private let queue = DispatchQueue(label: "rampart.state")
    private let logger: Logger
    /// Writes that failed, confined to `queue`.
    private let pending: PendingWriteBox
    private let retryInterval: Double
    /// The database file.
    public let path: String

    /// Opens (or creates) the database in `folder` and brings its schema up to date. A write waits
    /// up to `busyTimeout` seconds for a lock held by another process; failed writes are tried
    /// again every `retryInterval` seconds; at most `maxPending` distinct ones wait.
    public init(folder: String, logger: Logger, busyTimeout: Double = 5, retryInterval: Double = 5, maxPending: Int = 10_000) throws {
        path = (folder as NSString).appendingPathComponent("state.sqlite")
        self.logger = logger
        self.retryInterval = retryInterval
        pending = PendingWriteBox(PendingWrites(capacity: maxPending))
        var config = Configuration()
        config.busyMode = .timeout(busyTimeout)
        // Client addresses and incident details are personal data: the file (and the journals
        // SQLite creates next to it, which take its mode) is readable by the gateway's user only.
        if !FileManager.default.fileExists(atPath: path) {
            FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        } else {
            try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        }
        db = try DatabaseQueue(path: path, configuration: config)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "ban") { t in
                t.primaryKey("address", .text)
                t.column("until", .integer).notNull()
                t.column("level", .integer).notNull()
                t.column("reason", .text).notNull()
                t.column("created", .integer).notNull()
            }
            try db.create(table: "incident") { t in
                t.primaryKey("id", .integer)
                t.column("site", .text).notNull()
                t.column("start", .integer).notNull()
                t.column("end", .integer)
                t.column("body", .text).notNull()
            }
        }
        // Databases written before it get the table on their next open; nothing else changes.
        migrator.registerMigration("v2-mode-override") { db in
            try db.create(table: "mode_override") { t in
                t.primaryKey("site", .text)
                t.column("mode", .text).notNull()
                t.column("set_at", .integer).notNull()
            }
        }
        migrator.registerMigration("v3-operator-rule") { db in
            try db.create(table: "operator_rule") { t in
                t.primaryKey("id", .text)
                t.column("until", .integer).notNull()
                t.column("body", .text).notNull()
            }
        }
        try migrator.migrate(db)
    }

    /// Queues a write of the row named `key` (a later write of the same key replaces a pending one).
    private func write(_ key: String, _ work: @escaping @Sendable (Database) throws -> Void) {
        queue.async { [self] in
            pending.value.supersede(key)
            do {
                try db.write(work)
                if pending.value.failing { retryPending() }
            } catch {
                failed(key, work, error)
            }
            pending.publish()
        }
    }

    /// On `queue`: keeps a failed write for later, says so once when the database starts failing.
    private func failed(_ key: String, _ work: @escaping @Sendable (Database) throws -> Void, _ error: any Error) {
        let wasFailing = pending.value.failing
        pending.value.failed(key: key, work: work, error: "\(error)")
        pending.publish()
        if !wasFailing {
            logger.error(
                "state database not writable: the gateway keeps serving on its in-memory state and writes again every \(retryInterval == retryInterval.rounded() ? "\(Int(retryInterval))" : "\(retryInterval)") s",
                metadata: ["path": "\(path)", "error": "\(error)"])
            scheduleRetry()
        }
    }

    private func scheduleRetry() {
        queue.asyncAfter(deadline: .now() + retryInterval) { [self] in
            guard pending.value.failing else { return }
            retryPending()
            if pending.value.failing { scheduleRetry() }
        }
    }

    /// On `queue`: writes what waits, oldest first, until one fails again.
    private func retryPending() {
        while let waiting = pending.value.next() {
            do {
                try db.write(waiting.work)
                pending.value.succeeded(waiting.key)
            } catch {
                pending.value.failed(key: waiting.key, work: waiting.work, error: "\(error)")
                pending.publish()
                return
            }
        }
        pending.value.recovered()
        pending.publish()
        logger.notice("state database writable again: every waiting write is saved", metadata: ["path": "\(path)"])
    }

    /// How writing goes: whether the database takes writes, what waits, what was given up.
    public var health: StoreHealth { pending.published }

    /// Waits until every write queued so far is done (shutdown, tests).
    public func flush() { queue.sync {} }

    /// Tries the waiting writes now instead of at the next retry (tests, shutdown).
    public func retryNow() {
        queue.sync { [self] in if pending.value.failing { retryPending() } }
    }

    /// Stores (or replaces) a ban.
    public func saveBan(_ ban: BanRecord) {
        write("ban \(ban.address)") { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO ban (address, until, level, reason, created) VALUES (?, ?, ?, ?, ?)",
                arguments: [ban.address, ban.until, ban.level, ban.reason, ban.created]
            )
        }
    }

    /// Lifts a ban.
    public func removeBan(address: String) {
        write("ban \(address)") { db in try db.execute(sql: "DELETE FROM ban WHERE address = ?", arguments: [address]) }
    }

    /// Bans still in force at `now` (Unix seconds); expired ones are deleted on the way.
    public func activeBans(now: Int64) throws -> [BanRecord] {
        try queue.sync {
            try db.write { db in
                try db.execute(sql: "DELETE FROM ban WHERE until <= ?", arguments: [now])
                return try Row.fetchAll(db, sql: "SELECT address, until, level, reason, created FROM ban ORDER BY until DESC").map {
                    BanRecord(address: $0["address"], until: $0["until"], level: $0["level"], reason: $0["reason"], created: $0["created"])
                }
            }
        }
    }

    /// Stores (or replaces) the mode an operator forced `site` into, at `now` (Unix seconds).
    public func saveModeOverride(site: String, mode: SiteMode, at now: Int64) {
        write("mode \(site)") { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO mode_override (site, mode, set_at) VALUES (?, ?, ?)",
                arguments: [site, mode.rawValue, now]
            )
        }
    }

    /// Forgets `site`'s override (the site is automatic again).
    public func removeModeOverride(site: String) {
        write("mode \(site)") { db in try db.execute(sql: "DELETE FROM mode_override WHERE site = ?", arguments: [site]) }
    }

    /// Every stored override, by site. Rows naming a mode this version does not know are skipped.
    public func modeOverrides() throws -> [String: SiteMode] {
        try queue.sync {
            try db.read { db in
                var out: [String: SiteMode] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT site, mode FROM mode_override") {
                    if let mode = SiteMode(rawValue: row["mode"]) { out[row["site"]] = mode }
                }
                return out
            }
        }
    }

    /// Replaces the stored runtime rules with `rules` (one write: rules change rarely, and the
    /// set is small).
    public func saveRules(_ rules: [OperatorRule]) {
        let bodies = rules.map { rule in (rule.id, rule.until, String(decoding: (try? JSONEncoder().encode(rule)) ?? Data(), as: UTF8.self)) }
        write("rules") { db in
            try db.execute(sql: "DELETE FROM operator_rule")
            for (id, until, body) in bodies where !body.isEmpty {
                try db.execute(sql: "INSERT INTO operator_rule (id, until, body) VALUES (?, ?, ?)", arguments: [id, until, body])
            }
        }
    }

    /// The stored runtime rules; a row this version cannot read is skipped.
    public func storedRules() throws -> [OperatorRule] {
        try queue.sync {
            try db.read { db in
                try String.fetchAll(db, sql: "SELECT body FROM operator_rule ORDER BY id").compactMap {
                    try? JSONDecoder().decode(OperatorRule.self, from: Data($0.utf8))
                }
            }
        }
    }

    /// Stores an incident (open ones are updated as they go; the last write wins). The JSON is
    /// made on the write queue, not the caller's thread: with its per-second series an incident
    /// can be a few hundred kilobytes, and the caller is an event loop.
    public func saveIncident(_ incident: Incident) {
        write("incident \(incident.id)") { db in
            let body = String(decoding: try JSONEncoder().encode(incident), as: UTF8.self)
            try db.execute(
                sql: "INSERT OR REPLACE INTO incident (id, site, start, \"end\", body) VALUES (?, ?, ?, ?, ?)",
                arguments: [incident.id, incident.site, incident.start, incident.end, body]
            )
        }
    }

    /// Incident `id` as stored, nil when there is none (or its record cannot be read).
    public func incident(id: Int) throws -> Incident? {
        try queue.sync {
            try db.read { db in
                try String.fetchOne(db, sql: "SELECT body FROM incident WHERE id = ?", arguments: [id])
                    .flatMap { try? JSONDecoder().decode(Incident.self, from: Data($0.utf8)) }
            }
        }
    }

    /// The most recent `limit` incidents, oldest first.
    public func incidents(limit: Int = 200) throws -> [Incident] {
        try queue.sync {
            try db.read { db in
                let rows = try String.fetchAll(db, sql: "SELECT body FROM incident ORDER BY id DESC LIMIT ?", arguments: [limit])
                return rows.compactMap { try? JSONDecoder().decode(Incident.self, from: Data($0.utf8)) }.reversed()
            }
        }
    }
}

extension StateStore: BanStore, IncidentStore, ModeOverrideStore, RuleStore, StoreHealthReporting {}
