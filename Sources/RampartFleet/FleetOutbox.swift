import Foundation
import GRDB
import RampartCore

/// This node's decisions on their way to the fleet: every ban and unban decided here is written
/// to `fleet-outbox.sqlite` in the state folder first and removed once PostgreSQL has it. While
/// the database is unreachable the outbox fills; when it is back, it is replayed in order. A
/// restart in between loses nothing.
///
/// Bounded: past `capacity` entries the oldest are dropped (and counted): the newest decisions
/// matter most during an attack, and each node's own bans hold locally whatever happens.
/// Called from the fleet's task only, never from an event loop.
final class FleetOutbox: Sendable {
    /// A decision waiting to be shared: its row id, what, and when it was made (Unix seconds).
    struct Entry: Sendable, Equatable {
        var id: Int64
        var decision: SharedDecision
        var decided: Int64
    }

    private let db: DatabaseQueue
    /// Most entries kept.
    let capacity: Int

    /// Opens (or creates) the outbox at `path` (mode 0600: it holds client addresses).
    init(path: String, capacity: Int) throws {
        self.capacity = max(1, capacity)
        if !FileManager.default.fileExists(atPath: path) {
            FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        var config = Configuration()
        config.busyMode = .timeout(5)
        db = try DatabaseQueue(path: path, configuration: config)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "outbox") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("decision", .text).notNull()
                t.column("decided", .integer).notNull()
            }
        }
        try migrator.migrate(db)
    }

    /// Queues `decision` made at `decided`; returns how many old entries were dropped to stay
    /// within the capacity.
    @discardableResult
    func append(_ decision: SharedDecision, decided: Int64) throws -> Int {
        let json = String(decoding: try JSONEncoder().encode(decision), as: UTF8.self)
        let capacity = Int64(self.capacity)
        return try db.write { db in
            try db.execute(sql: "INSERT INTO outbox (decision, decided) VALUES (?, ?)", arguments: [json, decided])
            try db.execute(sql: "DELETE FROM outbox WHERE id <= (SELECT MAX(id) FROM outbox) - ?", arguments: [capacity])
            return db.changesCount
        }
    }

    /// The oldest `limit` entries, oldest first (an unreadable one is dropped).
    func oldest(_ limit: Int) throws -> [Entry] {
        let rows = try db.read { db in
            try Row.fetchAll(db, sql: "SELECT id, decision, decided FROM outbox ORDER BY id LIMIT ?", arguments: [limit])
        }
        var out: [Entry] = []
        for row in rows {
            let id: Int64 = row["id"]
            let text: String = row["decision"]
            guard let decision = try? JSONDecoder().decode(SharedDecision.self, from: Data(text.utf8)) else {
                try db.write { db in try db.execute(sql: "DELETE FROM outbox WHERE id = ?", arguments: [id]) }
                continue
            }
            out.append(Entry(id: id, decision: decision, decided: row["decided"]))
        }
        return out
    }

    /// Removes every entry up to and including `id` (they reached the database).
    func remove(upTo id: Int64) throws {
        try db.write { db in try db.execute(sql: "DELETE FROM outbox WHERE id <= ?", arguments: [id]) }
    }

    /// Entries waiting.
    func count() throws -> Int {
        try db.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox") ?? 0 }
    }
}
