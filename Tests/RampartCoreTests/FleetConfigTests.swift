import Foundation
import Testing

@testable import RampartCore

@Suite struct FleetConfigTests {
    static let base = """
        listeners:
          - address: 127.0.0.1:8080
        sites:
          - name: www
            hosts: [example.org]
            origins: [127.0.0.1:9000]

        """

    @Test func withoutFleetTheGatewayIsOneNode() throws {
        #expect(try ConfigLoader.load(yaml: Self.base, file: "t.yaml").fleet == nil)
    }

    @Test func aURLGivesEveryPart() throws {
        let config = try ConfigLoader.load(yaml: Self.base + """
            fleet:
              url: postgres://edge@db.internal:6432/rampart_fleet?sslmode=verify-full&node=edge-1
              poll_interval: 500ms
            """, file: "t.yaml")
        let fleet = try #require(config.fleet)
        #expect(fleet.host == "db.internal" && fleet.port == 6432 && fleet.database == "rampart_fleet" && fleet.user == "edge")
        #expect(fleet.tls == .verifyFull && fleet.node == "edge-1" && fleet.pollInterval == 0.5)
        #expect(fleet.description == "postgres://edge@db.internal:6432/rampart_fleet (tls: verify-full, node: edge-1)")
    }

    @Test func aPasswordInTheURLWorksButIsWarnedAboutAndNeverShown() throws {
        let checked = try ConfigLoader.check(yaml: Self.base + "fleet: { url: \"postgres://u:s3cret%21@127.0.0.1/db\" }\n", file: "t.yaml")
        let fleet = try #require(checked.config.fleet)
        #expect(try fleet.resolvePassword(environment: [:]) == "s3cret!")
        #expect(!fleet.description.contains("s3cret"))
        #expect(checked.warnings.map(\.key) == ["fleet.url"])
        #expect(checked.warnings[0].line == 7)
    }

    @Test func thePasswordComesFromAFileOrTheEnvironment() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-pw-\(UUID().uuidString)").path
        try "from-file\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let fromFile = try #require(try ConfigLoader.load(yaml: Self.base + "fleet: { host: 127.0.0.1, password_file: \(file) }\n", file: "t.yaml").fleet)
        #expect(try fromFile.resolvePassword(environment: ["RAMPART_FLEET_PASSWORD": "env"]) == "from-file")
        let fromEnv = try #require(try ConfigLoader.load(yaml: Self.base + "fleet: { host: 127.0.0.1, password_env: PGPASS_EDGE }\n", file: "t.yaml").fleet)
        #expect(try fromEnv.resolvePassword(environment: ["PGPASS_EDGE": "env-pw"]) == "env-pw")
        #expect(throws: FleetConfigError.self) { try fromEnv.resolvePassword(environment: [:]) }
        let none = try #require(try ConfigLoader.load(yaml: Self.base + "fleet: { host: 127.0.0.1 }\n", file: "t.yaml").fleet)
        #expect(try none.resolvePassword(environment: [:]) == nil)
        #expect(try none.resolvePassword(environment: ["RAMPART_FLEET_PASSWORD": "default-env"]) == "default-env")
    }

    @Test func badSettingsAreReportedWithLineAndKey() throws {
        let yaml = Self.base + """
            fleet:
              host: 127.0.0.1
              port: 70000
              tls: sometimes
              node: "no spaces please"
              password_file: /nonexistent/pw
              outbox_capacity: 1
              colour: blue
            """
        do {
            _ = try ConfigLoader.load(yaml: yaml, file: "fleet.yaml")
            Issue.record("a bad fleet section loaded")
        } catch {
            let found = Set(error.issues.map { "\($0.line):\($0.key)" })
            #expect(found == ["9:fleet.port", "10:fleet.tls", "11:fleet.node", "12:fleet.password_file", "13:fleet.outbox_capacity", "14:fleet.colour"], "\(error.description)")
            #expect(error.description.contains("fleet.yaml:10"))
        }
        #expect(throws: ConfigError.self) { try ConfigLoader.load(yaml: Self.base + "fleet: { url: \"mysql://x@y/z\" }\n", file: "t.yaml") }
        #expect(throws: ConfigError.self) { try ConfigLoader.load(yaml: Self.base + "fleet: { port: 5432 }\n", file: "t.yaml") }
    }

    @Test func flagURLs() throws {
        let ok = try FleetConfig.fromFlag("postgres://rampart@[::1]:5433/fleet").get()
        #expect(ok.host == "::1" && ok.port == 5433 && ok.database == "fleet" && ok.tls == .prefer)
        #expect(FleetConfig.validNodeName(ok.node))
        let plain = try FleetConfig.fromFlag("postgresql://db.example/x").get()
        #expect(plain.host == "db.example" && plain.port == 5432 && plain.user == "rampart")
        for bad in ["http://x/y", "postgres:///db", "postgres://u@h/db?sslmode=maybe", "postgres://u@h/db?node=a%20b", "postgres://u@h/db?colour=1"] {
            #expect(throws: FleetConfigError.self, "\(bad)") { try FleetConfig.fromFlag(bad).get() }
        }
    }
}
