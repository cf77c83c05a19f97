import Foundation
import RampartCore
import Testing

/// Operators' runtime rules on one gateway, without a fleet (docs/fleet.md#runtime-rules; the fleet
/// sharing them is in FleetTests).
extension IntegrationTests {
@Suite(.serialized) struct RuntimeRulesTests {
    @Test func aDenyRuleRefusesItsBlockUntilRemovedAndBadRulesAreRefused() async throws {
        let (origin, gw, port, admin, token) = try await AdminTests.start()
        defer { Task { await origin.stop() }; gw.stop() }
        func call(_ method: String, _ path: String, _ body: String = "") throws -> HTTPReply? {
            try RawClient(port: admin).request(method, path, headers: ["Authorization: Bearer \(token)", "Content-Type: application/json"], body: body)
        }
        func status(_ source: String) -> Int {
            (try? RawClient(port: port, source: source).request("GET", "/", headers: ["User-Agent: rules-test"]))?.status ?? 0
        }
        #expect(status("127.0.0.51") == 200)
        let added = try #require(try call("POST", "/api/rules", #"{"action":"deny","block":"127.0.0.48/29","site":"www","reason":"test"}"#))
        #expect(added.status == 201)
        let id = try #require((try JSONSerialization.jsonObject(with: Data(added.body)) as? [String: Any])?["id"] as? String)
        #expect(eventually(timeout: 2) { status("127.0.0.51") == 403 })
        #expect(status("127.0.0.56") == 200)
        let metrics = String(decoding: try #require(try call("GET", "/metrics")).body, as: UTF8.self)
        #expect(metrics.contains(#"rampart_rejections_total{reason="rule_denied"}"#))
        #expect(String(decoding: try #require(try call("GET", "/api/rules")).body, as: UTF8.self).contains(id))

        // Malformed rules, unknown sites and unknown ids are refused.
        #expect(try call("POST", "/api/rules", #"{"action":"block","block":"127.0.0.1"}"#)?.status == 400)
        #expect(try call("POST", "/api/rules", #"{"action":"deny","block":"127.0.0.1/33"}"#)?.status == 400)
        #expect(try call("POST", "/api/rules", #"{"action":"deny","block":"127.0.0.1","site":"nope"}"#)?.status == 404)
        #expect(try call("DELETE", "/api/rules/nope")?.status == 404)

        #expect(try call("DELETE", "/api/rules/\(id)")?.status == 204)
        #expect(eventually(timeout: 2) { status("127.0.0.51") == 200 })
        #expect(String(decoding: try #require(try call("GET", "/api/rules")).body, as: UTF8.self) == "[]")
    }

    @Test func rulesOutliveARestartAndARemovedOneStaysRemoved() async throws {
        let (origin, gw, port, admin, token) = try await AdminTests.start()
        defer { Task { await origin.stop() }; gw.stop() }
        func add(_ admin: Int, _ token: String, _ body: String) throws -> String {
            let reply = try #require(try RawClient(port: admin).request("POST", "/api/rules", headers: ["Authorization: Bearer \(token)", "Content-Type: application/json"], body: body))
            #expect(reply.status == 201)
            return try #require((try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any])?["id"] as? String)
        }
        let kept = try add(admin, token, #"{"action":"deny","block":"127.0.0.61","reason":"kept"}"#)
        let removed = try add(admin, token, #"{"action":"deny","block":"127.0.0.62","reason":"removed"}"#)
        #expect(try RawClient(port: admin).request("DELETE", "/api/rules/\(removed)", headers: ["Authorization: Bearer \(token)"])?.status == 204)

        // A clean stop, then a new process on the same config and state folder.
        gw.signal(SIGTERM)
        #expect(gw.waitForExit(timeout: 20) == 0, "\(gw.stderrText)")
        let again = try GatewayProcess(arguments: [
            "run", "--config", gw.configURL.path, "--state", gw.directory.appendingPathComponent("state").path, "--admin", "127.0.0.1:0",
        ])
        defer { again.stop() }
        let newPort = try again.waitUntilListening()[0]
        #expect(newPort != 0 && port != 0)
        let newAdmin = try again.adminPort()
        let newToken = try String(contentsOf: gw.directory.appendingPathComponent("state/admin.token"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let list = String(decoding: try #require(try RawClient(port: newAdmin).request("GET", "/api/rules", headers: ["Authorization: Bearer \(newToken)"])).body, as: UTF8.self)
        #expect(list.contains(kept) && !list.contains(removed), "\(list)")
        #expect((try? RawClient(port: newPort, source: "127.0.0.61").request("GET", "/"))??.status == 403)
        #expect((try? RawClient(port: newPort, source: "127.0.0.62").request("GET", "/"))??.status == 200)
        #expect(again.stderrText.contains("runtime rules restored"))
    }
}
}
