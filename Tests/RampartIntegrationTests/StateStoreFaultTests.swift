import Foundation
import Logging
import RampartCore
import RampartState
import Testing

/// The state store when its database refuses writes (here: locked by another process, as a backup
/// tool or an operator's `sqlite3` shell would): writes wait, the latest per row, bounded, and are
/// saved once the database takes them again.
extension IntegrationTests {
@Suite(.serialized) struct StateStoreFaultTests {
    /// A Python process holding an exclusive lock on `path` for `seconds`; returns once it holds it.
    static func lock(_ path: String, seconds: Double) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", """
            import sqlite3, sys, time
            db = sqlite3.connect(sys.argv[1], isolation_level=None)
            db.execute('BEGIN EXCLUSIVE')
            print('LOCKED', flush=True)
            time.sleep(float(sys.argv[2]))
            db.execute('COMMIT')
            """, path, "\(seconds)"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let line = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        guard line.contains("LOCKED") else { throw TestFailure("the lock holder said: \(line)") }
        return p
    }

    static func folder() throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-state-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return folder
    }

    @Test func writesRefusedByALockedDatabaseWaitAndAreSavedLater() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try StateStore(folder: folder, logger: Logger(label: "test"), busyTimeout: 0.1, retryInterval: 0.2)
        #expect(store.health == StoreHealth())
        let holder = try Self.lock(store.path, seconds: 1.5)
        store.saveBan(BanRecord(address: "192.0.2.1", until: 4_000_000_000, level: 0, reason: "manual", created: 1))
        store.saveBan(BanRecord(address: "192.0.2.2", until: 4_000_000_000, level: 0, reason: "manual", created: 1))
        // The later write of a row replaces the waiting one: 192.0.2.2 ends up lifted.
        store.removeBan(address: "192.0.2.2")
        store.saveModeOverride(site: "www", mode: .underAttack, at: 1)
        store.flush()
        let failing = store.health
        #expect(!failing.writable)
        #expect(failing.pendingWrites == 3, "\(failing)")
        #expect(failing.failedWrites >= 4)
        #expect(failing.lastError?.contains("locked") == true, "\(failing)")
        holder.waitUntilExit()
        #expect(eventually(timeout: 5) { store.health.writable })
        #expect(store.health.pendingWrites == 0)
        let reopened = try StateStore(folder: folder, logger: Logger(label: "test"))
        #expect(try reopened.activeBans(now: 2).map(\.address) == ["192.0.2.1"])
        #expect(try reopened.modeOverrides() == ["www": .underAttack])
    }

    @Test func atMostMaxPendingRowsWaitTheRestAreCountedAsDropped() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try StateStore(folder: folder, logger: Logger(label: "test"), busyTimeout: 0.05, retryInterval: 60, maxPending: 2)
        let holder = try Self.lock(store.path, seconds: 1)
        for i in 1...4 {
            store.saveBan(BanRecord(address: "192.0.2.\(i)", until: 4_000_000_000, level: 0, reason: "manual", created: 1))
        }
        store.flush()
        #expect(store.health.pendingWrites == 2)
        #expect(store.health.droppedWrites == 2)
        holder.waitUntilExit()
        // No retry is due for a minute: a new write that succeeds takes the waiting ones along.
        store.saveBan(BanRecord(address: "192.0.2.9", until: 4_000_000_000, level: 0, reason: "manual", created: 1))
        store.flush()
        #expect(store.health.writable && store.health.pendingWrites == 0, "\(store.health)")
        #expect(Set(try store.activeBans(now: 2).map(\.address)) == ["192.0.2.1", "192.0.2.2", "192.0.2.9"])
    }
}
}
