import Foundation
import RampartCore
import RampartDemoOrigin
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The admin listener of the real binary: token, endpoints and their effect on the gateway,
/// metrics, the OpenAPI document and the event stream.
extension IntegrationTests {
@Suite(.serialized) struct AdminTests {
    static let siteYAML = """
        listeners:
          - address: 127.0.0.1:0
        sites:
          - name: www
            hosts: [example.org]
            origins: [127.0.0.1:ORIGIN]
            health_check: { enabled: false }
        """

    static func start() async throws -> (DemoOrigin, GatewayProcess, port: Int, admin: Int, token: String) {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        let gw = try GatewayProcess(yaml: siteYAML.replacingOccurrences(of: "ORIGIN", with: String(originPort)))
        let port = try gw.waitUntilListening()[0]
        let (admin, token) = try gw.adminLink()
        return (origin, gw, port, admin, token)
    }

    static func repoFile(_ path: String) throws -> String {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) { dir = dir.deletingLastPathComponent() }
        return try String(contentsOf: dir.appendingPathComponent(path), encoding: .utf8)
    }

    /// Paths and methods in the committed OpenAPI document.
    static func documentedOperations() throws -> [(method: String, path: String)] {
        var ops: [(String, String)] = []
        var path: String?
        for line in try repoFile("docs/admin-openapi.yaml").split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  /"), line.hasSuffix(":") { path = String(line.dropFirst(2).dropLast()) }
            for m in ["get", "put", "post", "delete"] where line == "    \(m):" { if let path { ops.append((m.uppercased(), path)) } }
        }
        return ops
    }

    @Test func everyEndpointNeedsTheTokenAndTheDocumentMatchesTheRoutes() async throws {
        let (origin, gw, _, admin, token) = try await Self.start()
        defer { Task { await origin.stop() }; gw.stop() }
        // Generated on this first start (a fresh state folder), so the link carries it.
        #expect(token.count == 64 && token.allSatisfy(\.isHexDigit))
        let ops = try Self.documentedOperations()
        #expect(ops.count >= 14)
        for (method, template) in ops {
            let path = template.replacingOccurrences(of: "{site}", with: "www").replacingOccurrences(of: "{address}", with: "192.0.2.1")
                .replacingOccurrences(of: "{id}", with: "1")
            let c = try RawClient(port: admin)
            let body = method == "PUT" ? #"{"mode":"auto"}"# : method == "POST" ? #"{"address":"192.0.2.9","ttl_seconds":5}"# : ""
            let open = template == "/" || template == "/openapi.yaml"
            let none = try #require(c.request(method, path, headers: ["Content-Type: application/json"], body: body), "\(method) \(path)")
            #expect((none.status == 401) != open, "\(method) \(path) without a token: \(none.status)")
            if open { continue }
            let wrong = try RawClient(port: admin).request(method, path, headers: ["Authorization: Bearer nope-\(token)"], body: body)
            #expect(wrong?.status == 401, "\(method) \(path) with a wrong token")
            if path == "/api/stream" { continue }  // never ends; read in its own test
            let right = try RawClient(port: admin).request(method, path, headers: ["Authorization: Bearer \(token)", "Content-Type: application/json"], body: body)
            #expect(right.map { $0.status != 401 && $0.status != 405 && ($0.status != 404 || path.contains("192.0.2.1") || path.hasSuffix("/1") || path.contains("/incidents/1/")) } == true, "\(method) \(path): \(right?.status ?? 0)")
        }
        // The served document is the committed one.
        let served = try #require(try RawClient(port: admin).request("GET", "/openapi.yaml"))
        #expect(String(decoding: served.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            == (try Self.repoFile("docs/admin-openapi.yaml")).trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(gw.stderrText.isEmpty || !gw.stderrText.contains("error"))
    }

    @Test func theDashboardLinkSetsAStrictCookieAndThePageLoadsNothingFromOutside() async throws {
        let (origin, gw, _, admin, token) = try await Self.start()
        defer { Task { await origin.stop() }; gw.stop() }
        let link = try #require(try RawClient(port: admin).request("GET", "/?token=\(token)"))
        #expect(link.status == 303)
        #expect(link.header("location") == "/")
        let cookie = try #require(link.header("set-cookie"))
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"))
        let pair = String(cookie.split(separator: ";")[0])
        #expect(try RawClient(port: admin).request("GET", "/api/sites", headers: ["Cookie: \(pair)"])?.status == 200)
        let page = try #require(try RawClient(port: admin).request("GET", "/"))
        let html = String(decoding: page.body, as: UTF8.self)
        #expect(page.status == 200)
        #expect(html.contains("EventSource(\"/api/stream\")"))
        #expect(!html.contains("http://") && !html.contains("https://"))
        #expect(page.header("content-security-policy")?.contains("default-src 'none'") == true)
    }

    @Test func modeOverrideAndBansChangeWhatClientsGet() async throws {
        let (origin, gw, port, admin, token) = try await Self.start()
        defer { Task { await origin.stop() }; gw.stop() }
        let auth = ["Authorization: Bearer \(token)", "Content-Type: application/json"]
        let ua = "User-Agent: Mozilla/5.0 Firefox/140.0"
        #expect(try RawClient(port: port, source: "127.0.0.40").request("GET", "/", headers: [ua])?.status == 200)

        let set = try #require(try RawClient(port: admin).request("PUT", "/api/sites/www/mode", headers: auth, body: #"{"mode":"under_attack"}"#))
        #expect(set.status == 200)
        #expect(String(decoding: set.body, as: UTF8.self).contains(#""mode":"under_attack""#))
        #expect(eventually { try! RawClient(port: port, source: "127.0.0.41").request("GET", "/", headers: [ua])?.status == 302 })
        #expect(try RawClient(port: admin).request("PUT", "/api/sites/www/mode", headers: auth, body: #"{"mode":"chaos"}"#)?.status == 400)
        #expect(try RawClient(port: admin).request("PUT", "/api/sites/nope/mode", headers: auth, body: #"{"mode":"normal"}"#)?.status == 404)
        #expect(try RawClient(port: admin).request("PUT", "/api/sites/www/mode", headers: auth, body: #"{"mode":"auto"}"#)?.status == 200)
        #expect(eventually { try! RawClient(port: port, source: "127.0.0.42").request("GET", "/", headers: [ua])?.status == 200 })

        // A ban from the API: refused at accept; listed; lifted.
        // `ttl` as the command-line contract names it (`ttl_seconds`, the older name, works too).
        let ban = try RawClient(port: admin).request("POST", "/api/bans", headers: auth, body: #"{"address":"127.0.0.43","ttl":7200,"reason":"test"}"#)
        #expect(ban?.status == 201)
        let banned = try RawClient(port: port, source: "127.0.0.43")
        banned.send("GET / HTTP/1.1\r\nHost: example.org\r\n\r\n")
        #expect(banned.readResponse() == nil)
        let list = try #require(try RawClient(port: admin).request("GET", "/api/bans?filter=127.0.0.43", headers: auth))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(list.body)) as? [String: Any])
        #expect(json["total"] as? Int == 1)
        #expect(((json["bans"] as? [[String: Any]])?.first?["reason"] as? String) == "test")
        let remaining = ((json["bans"] as? [[String: Any]])?.first?["remaining"] as? Int) ?? 0
        #expect(remaining > 3600 && remaining <= 7200, "ttl not applied: \(remaining) s left")
        #expect(try RawClient(port: admin).request("DELETE", "/api/bans/127.0.0.43", headers: auth)?.status == 204)
        #expect(try RawClient(port: port, source: "127.0.0.43").request("GET", "/", headers: [ua])?.status == 200)
        #expect(try RawClient(port: admin).request("DELETE", "/api/bans/127.0.0.43", headers: auth)?.status == 404)

        // The metrics page is Prometheus text and counts what happened.
        let metrics = try #require(try RawClient(port: admin).request("GET", "/metrics", headers: auth))
        let text = String(decoding: metrics.body, as: UTF8.self)
        let sample = try Regex(#"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? -?[0-9.eE+-]+$"#)
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(line.wholeMatch(of: sample) != nil, "not a Prometheus sample: \(line)")
        }
        let requests = text.split(separator: "\n").first { $0.hasPrefix("rampart_requests_total ") }.flatMap { Double($0.split(separator: " ")[1]) }
        #expect((requests ?? 0) >= 4)
        #expect(text.contains(#"rampart_site_mode{site="www",mode="normal"} 1"#))
        #expect(text.contains(#"rampart_decisions_total{decision="challenged"}"#))
        #expect(text.contains("# TYPE rampart_response_seconds histogram"))
        // The admin listener's refusals are recorded through swift-metrics onto the same registry.
        #expect(text.contains("rampart_admin_unauthorized_total"))
        let count = text.split(separator: "\n").first { $0.hasPrefix("rampart_response_seconds_count ") }.flatMap { Int($0.split(separator: " ")[1]) }
        let inf = text.split(separator: "\n").first { $0.hasPrefix("rampart_response_seconds_bucket{le=\"+Inf\"} ") }.flatMap { Int($0.split(separator: " ")[1]) }
        #expect((count ?? 0) >= 4 && count == inf)

        // The event stream sends a frame a second.
        let stream = try RawClient(port: admin)
        stream.setTimeout(5)
        #expect(stream.send("GET /api/stream HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer \(token)\r\n\r\n"))
        let first = String(decoding: stream.readRaw(count: 400) ?? [], as: UTF8.self)
        #expect(first.contains("text/event-stream"))
        #expect(first.contains("data: {"))
    }
}
}
