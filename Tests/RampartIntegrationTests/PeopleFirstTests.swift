import Foundation
import RampartDemoOrigin
import RampartDrill
import Testing

/// Failed credentials through the real binary, in front of an origin that checks them: a spraying
/// source is refused before the origin after its allowance; a member who logs in and a configured
/// key from the same address are not.
extension IntegrationTests {
@Suite(.serialized) struct PeopleFirstTests {
    @Test func sprayedCredentialsAreRefusedBeforeTheOriginMembersAndKnownKeysAreNot() async throws {
        var config = DemoOrigin.Configuration()
        config.checkCredentials = true
        let origin = DemoOrigin(configuration: config)
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let gw = try GatewayProcess(
            yaml: DefenceTests.yaml(
                origin: originPort,
                site: "    session_cookies: [sessionid]\n    api_keys: [drill-api-key-0001]\n    credentials: { per_source: 3 }"
            ),
            extraArguments: ["--threads", "1"]
        )
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        let ua = "User-Agent: Mozilla/5.0 Firefox/140.0"
        func spray(_ i: Int) throws -> Int {
            // A refusal before the body ends the connection: one connection per attempt.
            let c = try RawClient(port: port, source: "127.0.0.90")
            if i % 2 == 0 { return c.request("POST", "/login", headers: [ua], body: "user=u\(i)&password=guess\(i)")?.status ?? 0 }
            return c.request("GET", "/api/orders", headers: ["Authorization: Bearer sprayed-key-\(i)-0123456789"])?.status ?? 0
        }
        var statuses: [Int] = []
        for i in 0..<8 { statuses.append(try spray(i)) }
        #expect(Array(statuses.prefix(4)) == [401, 401, 401, 401], "\(statuses)")
        #expect(statuses.dropFirst(4).allSatisfy { $0 == 429 }, "\(statuses)")
        let before = origin.stats.requests
        _ = try spray(8)
        #expect(origin.stats.requests == before, "a refused attempt reached the origin")

        // The same address with a configured key, and reading pages: served.
        let sameAddress = try RawClient(port: port, source: "127.0.0.90")
        #expect(sameAddress.request("GET", "/api/orders", headers: ["Authorization: Bearer drill-api-key-0001"])?.status == 200)
        #expect(sameAddress.request("GET", "/news", headers: [ua])?.status == 200)
        // A member logs in from elsewhere, with the right password, and is bound.
        let member = try RawClient(port: port, source: "127.0.3.7")
        let login = try #require(member.request("POST", "/login", headers: [ua], body: "user=ona&password=\(DemoOrigin.memberPassword)"))
        #expect(login.status == 303)
        var cookies: [String] = []
        for (name, value) in login.headers where name == "set-cookie" { cookies.append(String(value.split(separator: ";")[0])) }
        #expect(cookies.contains { $0.hasPrefix("__rampart_m=") })
        // The drill's members log in with the same password.
        #expect(DrillRunner.memberPassword == DemoOrigin.memberPassword)
        #expect(member.request("GET", "/account", headers: [ua, "Cookie: \(cookies.joined(separator: "; "))"])?.status == 200)
    }
}
}
