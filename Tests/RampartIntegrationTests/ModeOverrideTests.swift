import Foundation
import RampartDemoOrigin
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// An operator's mode override survives a restart of the real binary (it is in the state
/// database); clearing it through the API removes it for good; a mode the config fixes wins.
extension IntegrationTests {
@Suite(.serialized) struct ModeOverrideTests {
    static let token = "test-admin-token-0123456789"

    /// Starts the gateway on `config` and `state`; returns it, its listener port and admin port.
    static func start(config: String, state: String) throws -> (GatewayProcess, port: Int, admin: Int) {
        let gw = try GatewayProcess(arguments: ["run", "--config", config, "--state", state, "--admin", "127.0.0.1:0", "--threads", "2"])
        let port = try gw.waitUntilListening()[0]
        let admin = try gw.adminPort()
        return (gw, port, admin)
    }

    static func setMode(_ mode: String, site: String, admin: Int) throws -> Int? {
        try RawClient(port: admin).request(
            "PUT", "/api/sites/\(site)/mode", headers: ["Authorization: Bearer \(token)", "Content-Type: application/json"], body: #"{"mode":"\#(mode)"}"#
        )?.status
    }

    /// `GET /api/sites`, by site name.
    static func sites(admin: Int) throws -> [String: [String: Any]] {
        let reply = try #require(try RawClient(port: admin).request("GET", "/api/sites", headers: ["Authorization: Bearer \(token)"]))
        let list = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: list.compactMap { s in (s["site"] as? String).map { ($0, s) } })
    }

    static func stop(_ gw: GatewayProcess) {
        gw.signal(SIGTERM)
        #expect(gw.waitForExit() == 0)
    }

    @Test func anOverrideSurvivesARestartUntilClearedAndTheConfigsModeWins() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-mode-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = folder.appendingPathComponent("rampart.yaml").path
        let state = folder.appendingPathComponent("state").path
        try """
            listeners:
              - address: 127.0.0.1:0
            admin: { token: \(Self.token) }
            sites:
              - name: www
                hosts: [example.org]
                origins: [127.0.0.1:\(originPort)]
                health_check: { enabled: false }
              - name: fixed
                hosts: [fixed.example]
                origins: [127.0.0.1:\(originPort)]
                health_check: { enabled: false }
                mode: normal
            """.write(toFile: config, atomically: true, encoding: .utf8)

        let (first, _, admin1) = try Self.start(config: config, state: state)
        defer { first.stop() }
        #expect(try Self.setMode("under_attack", site: "www", admin: admin1) == 200)
        #expect(try Self.setMode("under_attack", site: "fixed", admin: admin1) == 200)
        #expect(try Self.sites(admin: admin1)["fixed"]?["mode"] as? String == "under_attack")
        Self.stop(first)

        let (second, port2, admin2) = try Self.start(config: config, state: state)
        defer { second.stop() }
        // The very first request already meets the restored mode: a browser is sent to the challenge.
        let browser = try RawClient(port: port2, source: "127.0.0.80").request("GET", "/", headers: ["User-Agent: Mozilla/5.0"])
        #expect(browser?.status == 302, "the first request after the restart was not challenged: \(browser?.status ?? 0)")
        let restored = try Self.sites(admin: admin2)
        #expect(restored["www"]?["override"] as? String == "under_attack" && restored["www"]?["mode"] as? String == "under_attack", "\(restored)")
        // The config's `mode: normal` is the standing order: the API override of that site is gone.
        #expect(restored["fixed"]?["mode"] as? String == "normal", "\(restored)")
        #expect(try Self.setMode("auto", site: "www", admin: admin2) == 200)
        #expect(try Self.sites(admin: admin2)["www"]?["override"] == nil || (try Self.sites(admin: admin2)["www"]?["override"] is NSNull))
        Self.stop(second)

        let (third, port3, admin3) = try Self.start(config: config, state: state)
        defer { third.stop() }
        let cleared = try Self.sites(admin: admin3)
        #expect(cleared["www"]?["mode"] as? String == "normal", "\(cleared)")
        #expect(cleared["www"]?["override"] == nil || cleared["www"]?["override"] is NSNull, "\(cleared)")
        #expect(try RawClient(port: port3, source: "127.0.0.81").request("GET", "/", headers: ["User-Agent: Mozilla/5.0"])?.status == 200)
        Self.stop(third)
    }

    @Test func aModeWrittenInTheConfigReplacesAStoredOverrideForGood() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-mode-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = folder.appendingPathComponent("rampart.yaml").path
        let state = folder.appendingPathComponent("state").path
        func write(mode: String) throws {
            try """
                listeners:
                  - address: 127.0.0.1:0
                admin: { token: \(Self.token) }
                sites:
                  - name: www
                    hosts: [example.org]
                    origins: [127.0.0.1:9]
                    health_check: { enabled: false }
                    mode: \(mode)
                """.write(toFile: config, atomically: true, encoding: .utf8)
        }

        try write(mode: "auto")
        let (first, _, admin1) = try Self.start(config: config, state: state)
        defer { first.stop() }
        #expect(try Self.setMode("under_attack", site: "www", admin: admin1) == 200)
        Self.stop(first)

        // The operator writes the mode into the config: it is the standing order from now on.
        try write(mode: "elevated")
        let (second, _, admin2) = try Self.start(config: config, state: state)
        defer { second.stop() }
        #expect(try Self.sites(admin: admin2)["www"]?["mode"] as? String == "elevated")
        #expect(eventually { second.stderrText.contains("stored mode override dropped") })
        Self.stop(second)

        // Back to automatic: the old API override does not come back.
        try write(mode: "auto")
        let (third, _, admin3) = try Self.start(config: config, state: state)
        defer { third.stop() }
        let sites = try Self.sites(admin: admin3)
        #expect(sites["www"]?["mode"] as? String == "normal", "\(sites)")
        #expect(sites["www"]?["override"] == nil || sites["www"]?["override"] is NSNull, "\(sites)")
        Self.stop(third)
    }
}
}
