import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Who may call the admin API of the real binary: the dashboard cookie only from the dashboard's
/// own origin for calls that change state, the token in a query only on the dashboard link, the
/// link's token checked before it becomes a cookie, and headers that keep other sites out.
extension IntegrationTests {
@Suite(.serialized) struct AdminAccessTests {
    /// The `name=value` pair of the cookie the dashboard link sets.
    static func dashboardCookie(admin: Int, token: String) throws -> String {
        let link = try #require(try RawClient(port: admin).request("GET", "/?token=\(token)", host: "127.0.0.1:\(admin)"))
        let setCookie = try #require(link.header("set-cookie"))
        return String(setCookie.split(separator: ";")[0])
    }

    /// One request to the admin listener as a browser on `http://127.0.0.1:ADMIN/` sends it.
    static func call(_ admin: Int, _ method: String, _ path: String, _ headers: [String], body: String = "") -> HTTPReply? {
        (try? RawClient(port: admin))?.request(method, path, host: "127.0.0.1:\(admin)", headers: headers, body: body)
    }

    /// Bans in force whose address or reason contains `filter`, read with the bearer token.
    static func bans(_ admin: Int, token: String, filter: String) -> Int? {
        call(admin, "GET", "/api/bans?filter=\(filter)", ["Authorization: Bearer \(token)"])?.json["total"] as? Int
    }

    /// A sample's value on the metrics page.
    static func metric(_ admin: Int, token: String, _ name: String) -> Double? {
        let text = call(admin, "GET", "/metrics", ["Authorization: Bearer \(token)"])?.text ?? ""
        return text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
    }

    @Test func aCallThatChangesStateWithTheCookieMustComeFromTheDashboardItself() async throws {
        let (origin, gw, port, admin, token) = try await AdminTests.start()
        defer { Task { await origin.stop() }; gw.stop() }
        let cookie = "Cookie: " + (try Self.dashboardCookie(admin: admin, token: token))
        let own = "http://127.0.0.1:\(admin)"
        let json = "Content-Type: application/json"
        let ban = #"{"address":"127.0.0.60","ttl_seconds":600,"reason":"csrf"}"#

        // The review's request: another site's page posting a "simple" body with the cookie.
        let evil = try #require(Self.call(admin, "POST", "/api/bans", [cookie, "Origin: http://evil.example", "Content-Type: text/plain"], body: ban))
        #expect(evil.status == 403)
        #expect(evil.header("content-type") == "application/json")
        #expect((evil.json["error"] as? String)?.isEmpty == false)
        // Everything that is not the dashboard's own page sending JSON.
        let refused: [[String]] = [
            ["Origin: http://evil.example", json],
            ["Origin: http://127.0.0.1:\(port)", json],  // same host name, another port: same-site, not same-origin
            ["Origin: http://localhost:\(admin)", json],
            ["Origin: https://127.0.0.1:\(admin)", json],
            ["Origin: null", json],
            ["Referer: http://evil.example/", json],
            ["Referer: http://127.0.0.1:\(admin).evil.example/", json],
            ["Referer: http://127.0.0.1:\(port)/", json],
            [json],
            ["Origin: \(own)", "Content-Type: text/plain"],
            ["Origin: \(own)", "Content-Type: application/x-www-form-urlencoded"],
            ["Origin: \(own)", "Content-Type: multipart/form-data; boundary=x"],
            ["Origin: \(own)"],
        ]
        for headers in refused {
            #expect(Self.call(admin, "POST", "/api/bans", [cookie] + headers, body: ban)?.status == 403, "\(headers)")
        }
        // None of them banned anyone: the address is served and no ban is listed.
        let ua = "User-Agent: Mozilla/5.0 Firefox/140.0"
        #expect(try RawClient(port: port, source: "127.0.0.60").request("GET", "/", headers: [ua])?.status == 200)
        #expect(Self.bans(admin, token: token, filter: "127.0.0.60") == 0)
        // Each refusal was counted.
        #expect((Self.metric(admin, token: token, "rampart_admin_forbidden_total") ?? 0) >= Double(refused.count + 1))

        // The dashboard's own call (Origin is this listener, JSON body) bans.
        #expect(Self.call(admin, "POST", "/api/bans", [cookie, "Origin: \(own)", json], body: ban)?.status == 201)
        let banned = try RawClient(port: port, source: "127.0.0.60")
        banned.send("GET / HTTP/1.1\r\nHost: example.org\r\n\r\n")
        #expect(banned.readResponse() == nil)
        // Lifting it from elsewhere is refused and the ban stays; from the dashboard (a browser
        // that sent Referer but no Origin) it is lifted.
        #expect(Self.call(admin, "DELETE", "/api/bans/127.0.0.60", [cookie, "Origin: http://evil.example"])?.status == 403)
        #expect(Self.bans(admin, token: token, filter: "127.0.0.60") == 1)
        #expect(Self.call(admin, "DELETE", "/api/bans/127.0.0.60", [cookie, "Referer: \(own)/"])?.status == 204)
        #expect(Self.bans(admin, token: token, filter: "127.0.0.60") == 0)

        // Modes: refused from elsewhere (the site stays automatic), accepted from the dashboard.
        #expect(Self.call(admin, "PUT", "/api/sites/www/mode", [cookie, "Origin: http://127.0.0.1:\(port)", json], body: #"{"mode":"under_attack"}"#)?.status == 403)
        let sites = try #require(Self.call(admin, "GET", "/api/sites", [cookie]))  // reading needs the cookie only
        #expect(sites.status == 200 && !sites.text.contains("under_attack"), "\(sites.text)")
        let set = try #require(Self.call(admin, "PUT", "/api/sites/www/mode", [cookie, "Origin: \(own)", "Content-Type: application/json; charset=utf-8"], body: #"{"mode":"under_attack"}"#))
        #expect(set.status == 200 && set.text.contains(#""override":"under_attack""#), "\(set.text)")
        #expect(eventually { (try? RawClient(port: port, source: "127.0.0.61"))?.request("GET", "/", headers: [ua])?.status == 302 })
        // A script with the bearer token needs no Origin: it is not a browser acting for a page.
        #expect(Self.call(admin, "PUT", "/api/sites/www/mode", ["Authorization: Bearer \(token)", "Origin: http://evil.example", json], body: #"{"mode":"auto"}"#)?.status == 200)
        // Reload: refused from elsewhere; from the dashboard the config file is read again.
        #expect(Self.call(admin, "POST", "/api/reload", [cookie, "Origin: http://evil.example"])?.status == 403)
        #expect(Self.call(admin, "POST", "/api/reload", [cookie, "Origin: \(own)"])?.status == 200)
    }

    @Test func everyDocumentedCallThatChangesStateRefusesTheCookieFromAnotherOrigin() async throws {
        let (origin, gw, _, admin, token) = try await AdminTests.start()
        defer { Task { await origin.stop() }; gw.stop() }
        let cookie = "Cookie: " + (try Self.dashboardCookie(admin: admin, token: token))
        let changes = try AdminTests.documentedOperations().filter { $0.method != "GET" }
        #expect(changes.count >= 4)
        for (method, template) in changes {
            let path = template.replacingOccurrences(of: "{site}", with: "www").replacingOccurrences(of: "{address}", with: "192.0.2.1")
            let body = method == "PUT" ? #"{"mode":"auto"}"# : method == "POST" ? #"{"address":"192.0.2.9","ttl_seconds":5}"# : ""
            let json = "Content-Type: application/json"
            let elsewhere = try #require(Self.call(admin, method, path, [cookie, "Origin: http://evil.example", json], body: body), "\(method) \(path)")
            #expect(elsewhere.status == 403, "\(method) \(path) with the cookie from another origin: \(elsewhere.status)")
            let dashboard = try #require(Self.call(admin, method, path, [cookie, "Origin: http://127.0.0.1:\(admin)", json], body: body), "\(method) \(path)")
            #expect(![401, 403, 405].contains(dashboard.status), "\(method) \(path) from the dashboard: \(dashboard.status)")
        }
        // The one ban a POST above could make came from the dashboard's call only.
        #expect(Self.bans(admin, token: token, filter: "192.0.2.9") == 1)
    }

    @Test func theLinkSetsTheCookieOnlyForTheRightTokenAndOnlyWithTokenCharacters() async throws {
        let (origin, gw, _, admin, token) = try await AdminTests.start()
        defer { Task { await origin.stop() }; gw.stop() }
        let before = Self.metric(admin, token: token, "rampart_admin_unauthorized_total") ?? 0
        let wrongLinks = [
            "/?token=wrong",
            "/?token=x;%20Domain=evil.example",
            "/?token=\(token)%3B%20Domain%3Devil.example",
            "/?token=\(token.dropLast())",
            "/?token=",
        ]
        for link in wrongLinks {
            let reply = try #require(Self.call(admin, "GET", link, []), "\(link)")
            #expect(reply.status == 401, "\(link)")
            #expect(reply.header("set-cookie") == nil, "\(link)")
            // A person gets the sign-in form again, saying the token was refused.
            #expect(reply.text.contains(#"<form id="login" class="show""#) && reply.text.contains(#"<p id="refused">"#), "\(link)")
        }
        #expect((Self.metric(admin, token: token, "rampart_admin_unauthorized_total") ?? 0) >= before + Double(wrongLinks.count))

        let right = try #require(Self.call(admin, "GET", "/?token=\(token)", []))
        #expect(right.status == 303)
        #expect(right.header("location") == "/")
        #expect(right.headers.filter { $0.0 == "set-cookie" }.map(\.1) == ["rampart_admin=\(token); Path=/; HttpOnly; SameSite=Strict"])

        // The cookie opens the API; a forged one does not, even beside the right one's name.
        #expect(Self.call(admin, "GET", "/api/sites", ["Cookie: rampart_admin=\(token)"])?.status == 200)
        #expect(Self.call(admin, "GET", "/api/sites", ["Cookie: rampart_admin=forged-\(token)"])?.status == 401)
        #expect(Self.call(admin, "GET", "/api/sites", ["Cookie: rampart_admin="])?.status == 401)
        // A cookie of the same name set by another application on this host name does not lock
        // the operator out.
        #expect(Self.call(admin, "GET", "/api/sites", ["Cookie: rampart_admin=planted; rampart_admin=\(token)"])?.status == 200)
    }

    @Test func theTokenInAQueryOpensNoAPIRoute() async throws {
        let (origin, gw, port, admin, token) = try await AdminTests.start()
        defer { Task { await origin.stop() }; gw.stop() }
        for (method, template) in try AdminTests.documentedOperations() where template != "/" && template != "/openapi.yaml" {
            let path = template.replacingOccurrences(of: "{site}", with: "www").replacingOccurrences(of: "{address}", with: "192.0.2.1")
                .replacingOccurrences(of: "{id}", with: "1")
            let body = method == "PUT" ? #"{"mode":"under_attack"}"# : method == "POST" ? #"{"address":"127.0.0.62","ttl_seconds":600}"# : ""
            let reply: HTTPReply?
            if path == "/api/stream" {
                // An accepted stream never ends: read its head only.
                let c = try RawClient(port: admin)
                c.send("GET /api/stream?token=\(token) HTTP/1.1\r\nHost: 127.0.0.1:\(admin)\r\n\r\n")
                reply = c.readResponse(head: true)
            } else {
                reply = Self.call(admin, method, path + "?token=\(token)", ["Content-Type: application/json"], body: body)
            }
            #expect(reply?.status == 401, "\(method) \(path)?token=: \(reply?.status ?? 0)")
        }
        // Nothing those calls asked for happened.
        #expect(Self.bans(admin, token: token, filter: "127.0.0.62") == 0)
        #expect(try RawClient(port: port, source: "127.0.0.62").request("GET", "/", headers: ["User-Agent: Mozilla/5.0 Firefox/140.0"])?.status == 200)
        let sites = Self.call(admin, "GET", "/api/sites", ["Authorization: Bearer \(token)"])
        #expect(sites?.status == 200 && sites?.text.contains("under_attack") == false)
    }

    @Test func everyAdminResponseForbidsFramingAndReadsFromOtherOrigins() async throws {
        let (origin, gw, _, admin, token) = try await AdminTests.start()
        defer { Task { await origin.stop() }; gw.stop() }
        let cookie = "Cookie: " + (try Self.dashboardCookie(admin: admin, token: token))
        let bearer = "Authorization: Bearer \(token)"
        let cases: [(String, String, [String], Int)] = [
            ("GET", "/", [], 200),
            ("GET", "/?token=wrong", [], 401),
            ("GET", "/?token=\(token)", [], 303),
            ("GET", "/openapi.yaml", [], 200),
            ("GET", "/api/health", [bearer], 200),
            ("GET", "/api/sites", [cookie], 200),
            ("GET", "/metrics", [bearer], 200),
            ("GET", "/api/sites", [], 401),
            ("POST", "/api/bans", [cookie, "Origin: http://evil.example", "Content-Type: application/json"], 403),
            ("GET", "/api/no-such-route", [bearer], 404),
        ]
        for (method, path, headers, status) in cases {
            let reply = try #require(Self.call(admin, method, path, headers, body: method == "POST" ? "{}" : ""), "\(method) \(path)")
            #expect(reply.status == status, "\(method) \(path): \(reply.status)")
            #expect(reply.header("cross-origin-resource-policy") == "same-origin", "\(method) \(path)")
            #expect(reply.header("x-frame-options") == "DENY", "\(method) \(path)")
            #expect(reply.header("x-content-type-options") == "nosniff", "\(method) \(path)")
            #expect(reply.header("content-security-policy")?.contains("frame-ancestors 'none'") == true, "\(method) \(path)")
        }
    }
}
}
