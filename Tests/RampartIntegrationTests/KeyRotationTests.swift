import Foundation
import RampartCore
import RampartDemoOrigin
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `rampart keys rotate`: a leaked signing key (or admin token) is replaced by a fresh one, the
/// files stay their owner's only, and the next start uses the new key.
extension IntegrationTests {
@Suite(.serialized) struct KeyRotationTests {
    /// Runs the `rampart` binary to its end: exit status, and standard output and error together.
    static func rampart(_ args: [String]) throws -> (Int32, String) {
        try runProgram(args, executable: Binary.rampart)
    }

    /// A file's bytes (empty when it cannot be read).
    static func bytes(_ path: String) -> [UInt8] { FileManager.default.contents(atPath: path).map { Array($0) } ?? [] }

    /// A clearance cookie for `client` and `agent` signed with `secret`, as a gateway holding that
    /// key would issue after its cookie check.
    static func clearance(secret: [UInt8], client: String, agent: String) throws -> String {
        var keys = SigningKeys(secret: secret)
        let now = Int64(Date().timeIntervalSince1970)
        let ip = try #require(IPAddress(client))
        return "__rampart=" + Clearance.issue(level: .cookie, client: ip, now: now, ttl: 3600).encode(keys: &keys, userAgent: agent, now: now)
    }

    @Test func rotateWritesFreshOwnerOnlyFilesAndTheNextStartUsesThem() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let folder = try TestFolder()
        defer { folder.remove() }
        try folder.write(
            config: AdminTests.siteYAML.replacingOccurrences(of: "ORIGIN", with: String(originPort))
                + "\n    mode: under_attack\n    challenge: { tier: cookie }\n"
        )
        let keyPath = folder.stateFile("signing.key")
        let tokenPath = folder.stateFile("admin.token")

        // No state folder yet: nothing to rotate, and it says so.
        let (missing, missingOut) = try Self.rampart(["keys", "rotate", "--state", folder.state.path])
        #expect(missing != 0 && missingOut.contains("no state folder"), "\(missingOut)")

        // A first start makes the key and the token.
        let first = try StatefulGateway(config: folder.config, state: folder.state)
        _ = try first.dashboardLine()
        first.stop()
        let key1 = Self.bytes(keyPath)
        let token1 = Self.bytes(tokenPath)
        #expect(key1.count == 32 && token1.count == 65)
        // The state folder and everything the first start wrote in it are the gateway user's only.
        #expect(folder.mode(folder.state.path) == 0o700)
        #expect(folder.mode(keyPath) == 0o600 && folder.mode(tokenPath) == 0o600)
        #expect(folder.mode(folder.state.appendingPathComponent("state.sqlite").path) == 0o600)

        // Rotate the key: new bytes, owner-only, the token untouched, no temporary file left.
        let (status, out) = try Self.rampart(["keys", "rotate", "--state", folder.state.path])
        #expect(status == 0, "\(out)")
        #expect(out.contains(keyPath) && out.contains("restart"), "\(out)")
        let key2 = Self.bytes(keyPath)
        #expect(key2.count == 32 && key2 != key1)
        #expect(folder.mode(keyPath) == 0o600)
        #expect(Self.bytes(tokenPath) == token1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.state.path).filter { $0.hasSuffix(".tmp") }.isEmpty)

        // Rotate both (found through the config's folder this time, --state given explicitly).
        let (both, bothOut) = try Self.rampart(["keys", "rotate", "--config", folder.config.path, "--state", folder.state.path, "--admin-token"])
        #expect(both == 0, "\(bothOut)")
        #expect(bothOut.contains(tokenPath), "\(bothOut)")
        let key3 = Self.bytes(keyPath)
        let token2 = String(decoding: Self.bytes(tokenPath), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(key3.count == 32 && key3 != key2)
        #expect(token2.count == 64 && token2.allSatisfy(\.isHexDigit) && Array((token2 + "\n").utf8) != token1)
        #expect(folder.mode(tokenPath) == 0o600)
        // The new token is never printed.
        #expect(!bothOut.contains(token2))

        // A key copied in with loose permissions is made owner-only at start, with a warning.
        chmod(keyPath, 0o644)
        let second = try StatefulGateway(config: folder.config, state: folder.state)
        defer { second.stop() }
        let port = try second.listenerPort()
        let admin = try second.adminPort()
        #expect(eventually { folder.mode(keyPath) == 0o600 })
        #expect(second.stderr.text.contains("now readable by its owner only"))
        // The gateway kept the rotated key (it did not make another one) and signs with it: a
        // clearance signed with the new key passes a form post under attack; one signed with the
        // old key is no clearance at all (429, as without one).
        #expect(Self.bytes(keyPath) == key3)
        let agent = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"
        #expect(eventually { second.stderr.text.contains("to=under_attack") })
        let fresh = try Self.clearance(secret: key3, client: "127.0.0.80", agent: agent)
        let stale = try Self.clearance(secret: key1, client: "127.0.0.81", agent: agent)
        let withNew = try RawClient(port: port, source: "127.0.0.80").request("POST", "/login", headers: ["User-Agent: \(agent)", "Cookie: \(fresh)"], body: "u=a&p=b")
        #expect(withNew?.status == 200)
        let withOld = try RawClient(port: port, source: "127.0.0.81").request("POST", "/login", headers: ["User-Agent: \(agent)", "Cookie: \(stale)"], body: "u=a&p=b")
        #expect(withOld?.status == 429)
        // The new admin token opens the API; the old one is refused.
        let oldToken = String(decoding: token1, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try RawClient(port: admin).request("GET", "/api/health", headers: ["Authorization: Bearer \(token2)"])?.status == 200)
        #expect(try RawClient(port: admin).request("GET", "/api/health", headers: ["Authorization: Bearer \(oldToken)"])?.status == 401)
    }
}
}
