import Foundation
import Logging
import RampartCore
import RampartDemoOrigin
import RampartState
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Bans and incidents in the SQLite state folder, across a restart of the real binary.
extension IntegrationTests {
@Suite(.serialized) struct StateTests {
    @Test func theStoreKeepsBansUntilTheyEndAndIncidentsInOrder() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-state-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try StateStore(folder: folder, logger: Logger(label: "test"))
        store.saveBan(BanRecord(address: "192.0.2.1", until: 2000, level: 1, reason: "rate_limited", created: 1000))
        store.saveBan(BanRecord(address: "192.0.2.2", until: 1500, level: 0, reason: "manual", created: 1000))
        var incident = Incident(id: 1, site: "www", start: 1000, mode: .underAttack, line: "opened")
        store.saveIncident(incident)
        incident.end = 1100
        incident.timeline.append("closed")
        store.saveIncident(incident)
        store.saveIncident(Incident(id: 2, site: "www", start: 1200, mode: .elevated, line: "opened"))
        store.flush()
        // A second handle on the same file, as after a restart.
        let reopened = try StateStore(folder: folder, logger: Logger(label: "test"))
        #expect(try reopened.activeBans(now: 1600).map(\.address) == ["192.0.2.1"])
        #expect(try reopened.activeBans(now: 2000).isEmpty)
        let incidents = try reopened.incidents()
        #expect(incidents.map(\.id) == [1, 2])
        #expect(incidents[0].end == 1100 && incidents[0].timeline == ["opened", "closed"])
    }

    @Test func modeOverridesAreStoredReplacedAndRemoved() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-state-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try StateStore(folder: folder, logger: Logger(label: "test"))
        store.saveModeOverride(site: "www", mode: .elevated, at: 1000)
        store.saveModeOverride(site: "www", mode: .underAttack, at: 1001)
        store.saveModeOverride(site: "api", mode: .normal, at: 1002)
        store.saveModeOverride(site: "old", mode: .elevated, at: 1003)
        store.removeModeOverride(site: "old")
        store.flush()
        let reopened = try StateStore(folder: folder, logger: Logger(label: "test"))
        #expect(try reopened.modeOverrides() == ["www": .underAttack, "api": .normal])
    }

    /// A database written by the version before mode overrides (schema `v1` only, with a ban in
    /// it) is brought up to date on open: the ban is kept and overrides can be stored.
    @Test func aDatabaseFromBeforeModeOverridesMigratesCleanly() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-state-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let v1 = """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            db.executescript('''
            CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
            INSERT INTO grdb_migrations VALUES ('v1');
            CREATE TABLE "ban" ("address" TEXT PRIMARY KEY NOT NULL, "until" INTEGER NOT NULL, "level" INTEGER NOT NULL, "reason" TEXT NOT NULL, "created" INTEGER NOT NULL);
            CREATE TABLE "incident" ("id" INTEGER PRIMARY KEY, "site" TEXT NOT NULL, "start" INTEGER NOT NULL, "end" INTEGER, "body" TEXT NOT NULL);
            INSERT INTO ban VALUES ('192.0.2.1', 4000000000, 2, 'rate_limited', 1000);
            ''')
            db.commit()
            """
        let (status, out) = try runProgram(["python3", "-c", v1, folder + "/state.sqlite"])
        #expect(status == 0, "\(out)")
        let store = try StateStore(folder: folder, logger: Logger(label: "test"))
        #expect(try store.activeBans(now: 2000) == [BanRecord(address: "192.0.2.1", until: 4_000_000_000, level: 2, reason: "rate_limited", created: 1000)])
        #expect(try store.modeOverrides().isEmpty)
        store.saveModeOverride(site: "www", mode: .underAttack, at: 2000)
        store.flush()
        #expect(try StateStore(folder: folder, logger: Logger(label: "test")).modeOverrides() == ["www": .underAttack])
    }

    @Test func bansAndIncidentsSurviveARestartOfTheGateway() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-restart-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = folder.appendingPathComponent("rampart.yaml").path
        let state = folder.appendingPathComponent("state").path
        try """
            listeners:
              - address: 127.0.0.1:0
            bans: {strikes: 5, strikes_per_second: 0, duration: 10m}
            sites:
              - name: www
                hosts: [example.org]
                origins: [127.0.0.1:\(originPort)]
                health_check: { enabled: false }
                mode: under_attack
                rate_limits: [{name: per-ip, rate: 1/s, burst: 2}]
            """.write(toFile: config, atomically: true, encoding: .utf8)

        let first = try GatewayProcess(arguments: ["run", "--config", config, "--state", state, "--threads", "1"])
        defer { first.stop() }
        let port = try first.waitUntilListening()[0]
        let flooder = try RawClient(port: port, source: "127.0.0.66")
        for _ in 0..<20 where flooder.request("GET", "/api/x") != nil {}
        #expect(eventually(timeout: 3) { first.stderrText.contains("source banned") })
        first.signal(SIGTERM)
        #expect(first.waitForExit() == 0)

        let second = try GatewayProcess(arguments: ["run", "--config", config, "--state", state, "--threads", "1"])
        defer { second.stop() }
        let port2 = try second.waitUntilListening()[0]
        let again = try RawClient(port: port2, source: "127.0.0.66")
        again.send("GET /api/x HTTP/1.1\r\nHost: example.org\r\n\r\n")
        #expect(again.readResponse() == nil, "the ban did not survive the restart")
        #expect(try RawClient(port: port2, source: "127.0.0.67").request("GET", "/api/x")?.status == 200)
        second.signal(SIGTERM)
        #expect(second.waitForExit() == 0)

        let incidents = try StateStore(folder: state, logger: Logger(label: "test")).incidents()
        #expect(incidents.count == 2)
        #expect(incidents.first?.end != nil)
        #expect(incidents.first?.timeline.last?.contains("gateway restarted") == true)
        #expect(incidents.first?.peakMode == "under_attack")
    }
}
}
