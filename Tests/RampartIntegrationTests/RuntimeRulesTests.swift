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
}
}
