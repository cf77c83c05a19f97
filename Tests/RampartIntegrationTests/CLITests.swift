import Foundation
import RampartCore
import RampartDemoOrigin
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The operator commands against a running gateway, and `replay` on a committed log.
extension IntegrationTests {
@Suite(.serialized) struct OperatorCLITests {
    static func rampart(_ args: [String]) throws -> (Int32, String) {
        try runProgram(args, executable: Binary.rampart)
    }

    @Test func modeBanIncidentsAndTopTalkToTheRunningGateway() async throws {
        let (origin, gw, port, admin, token) = try await AdminTests.start()
        defer { Task { await origin.stop() }; gw.stop() }
        let a = ["--admin", "127.0.0.1:\(admin)", "--token", token]

        let (s1, mode) = try Self.rampart(["mode", "www", "under-attack"] + a)
        #expect(s1 == 0 && mode.contains("www: under_attack (forced)"), "\(mode)")
        #expect(eventually { try! RawClient(port: port, source: "127.0.0.70").request("GET", "/", headers: ["User-Agent: Mozilla/5.0"])?.status == 302 })
        #expect(try Self.rampart(["mode", "www", "chaos"] + a).0 != 0)
        #expect(try Self.rampart(["mode", "www", "auto"] + a).0 == 0)

        #expect(try Self.rampart(["ban", "add", "127.0.0.71", "--ttl", "120", "--reason", "cli test"] + a).0 == 0)
        let (_, list) = try Self.rampart(["ban", "list"] + a)
        #expect(list.contains("1 bans in force") && list.contains("127.0.0.71") && list.contains("cli test"), "\(list)")
        #expect(try Self.rampart(["ban", "rm", "127.0.0.71"] + a).0 == 0)
        #expect(try Self.rampart(["ban", "list"] + a).1.contains("0 bans in force"))

        let (_, incidents) = try Self.rampart(["incidents"] + a)
        #expect(incidents.contains("www") && incidents.contains("under_attack"), "\(incidents)")
        let (st, top) = try Self.rampart(["top", "--count", "1"] + a)
        #expect(st == 0 && top.contains("www") && top.contains("REQ/S"), "\(top)")
        // A wrong token is a clear error, not a crash.
        let (sw, wrong) = try Self.rampart(["ban", "list", "--admin", "127.0.0.1:\(admin)", "--token", "wrong-token-000000000"])
        #expect(sw != 0 && wrong.contains("refused the admin token"), "\(wrong)")
    }

    @Test func theAccessLogIsJSONLinesReopenedOnSIGUSR1AndReplayable() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-log-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("access.log").path
        let gw = try GatewayProcess(yaml: GatewayBinaryTests.yaml(origin: originPort), extraArguments: ["--access-log", log])
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        let c = try RawClient(port: port, source: "127.0.0.90")
        #expect(c.request("GET", "/news?a=1", headers: ["User-Agent: Mozilla/5.0 \"quoted\""])?.status == 200)
        #expect(c.request("GET", "/", host: "unknown.example")?.status == 421)
        var lines: [[String: Any]] = []
        #expect(eventually {
            lines = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n")
                .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? []
            return lines.count >= 2
        })
        let first = try #require(lines.first)
        #expect(first["site"] as? String == "www" && first["client"] as? String == "127.0.0.90" && first["method"] as? String == "GET")
        #expect(first["path"] as? String == "/news?a=1" && first["status"] as? Int == 200 && first["decision"] as? String == "proxied")
        #expect(first["agent"] as? String == "Mozilla/5.0 \"quoted\"" && (first["request_id"] as? String)?.count == 15)
        #expect((first["time"] as? String)?.hasSuffix("Z") == true && first["duration_ms"] is Double)
        #expect(lines[1]["status"] as? Int == 421 && lines[1]["decision"] as? String == "rejected" && lines[1]["reason"] as? String == "unknown_host")
        // logrotate: move the file away, SIGUSR1, and new lines go to a new file.
        try FileManager.default.moveItem(atPath: log, toPath: log + ".1")
        gw.signal(SIGUSR1)
        #expect(eventually { gw.stderrText.contains("access log reopened") })
        #expect(c.request("GET", "/after")?.status == 200)
        #expect(eventually { (try? String(contentsOfFile: log, encoding: .utf8))?.contains("\"/after\"") == true })
        // The same lines feed `rampart replay`.
        let (status, out) = try Self.rampart(["replay", log + ".1"])
        #expect(status == 0 && out.contains("2 requests"), "\(out)")
    }

    @Test func alertWebhooksHearOfModeChangesAndIncidentsWithRetries() async throws {
        let receiver = try ToolProcess("webhook_receiver.py", ["40"])
        defer { receiver.stop() }
        let received = receiver.output
        let hookPort = try receiver.port()

        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let yaml = GatewayBinaryTests.yaml(origin: originPort, top: "alerts: { webhooks: [http://127.0.0.1:\(hookPort)/hook] }")
        let gw = try GatewayProcess(yaml: yaml + "    mode: under_attack\n")
        defer { gw.stop() }
        _ = try gw.waitUntilListening()
        // Opened: a mode change and an incident; the first delivery got 500 and was retried.
        #expect(eventually(timeout: 15) {
            let lines = received.all.filter { $0.hasPrefix("200 ") }
            return lines.contains { $0.contains(#""kind":"mode_changed""#) } && lines.contains { $0.contains(#""kind":"incident_opened""#) }
        }, "\(received.all)")
        #expect(received.all.contains { $0.hasPrefix("500 ") })
        // Back to automatic (normal): the incident closes and says so.
        try yaml.write(to: gw.configURL, atomically: true, encoding: .utf8)
        gw.signal(SIGHUP)
        #expect(eventually(timeout: 15) { received.all.contains { $0.hasPrefix("200 ") && $0.contains(#""kind":"incident_closed""#) } }, "\(received.all)")
        let closed = try #require(received.all.first { $0.contains(#""kind":"incident_closed""#) })
        let body = try #require(try JSONSerialization.jsonObject(with: Data(closed.dropFirst(4).utf8)) as? [String: Any])
        #expect((body["text"] as? String)?.contains("incident #1 on www closed") == true)
        #expect(body["site"] as? String == "www")
    }

    @Test func replayTellsWhenTheModeWouldHaveRisenAndWhomItWouldHaveBanned() throws {
        let log = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("testdata/flood-access.log").path
        let (status, out) = try Self.rampart(["replay", log])
        #expect(status == 0, "\(out)")
        #expect(out.contains("3950 requests from 2026-07-01T10:00:00Z"))
        #expect(out.contains("2026-07-01T10:01:0") && out.contains("normal -> under_attack"), "\(out)")
        #expect(out.contains("ban 203.0.113.66"))
        #expect(out.contains("elevated -> normal"))
        #expect(out.contains("top agents:   Mozilla/5.0 (flood)"))
    }
}
}
