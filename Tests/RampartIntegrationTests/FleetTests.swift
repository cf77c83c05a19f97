import Foundation
import RampartDemoOrigin
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Three `rampart` processes on loopback sharing one throwaway PostgreSQL cluster (docs/fleet.md).
extension IntegrationTests {
@Suite(.serialized, .enabled(if: PostgresCluster.shouldRun, "PostgreSQL is not installed (CI sets RAMPART_REQUIRE_POSTGRES=1)"))
struct FleetTests {
    static let token = "fleet-test-admin-token-0123456789"

    /// Waits (at most `timeout` seconds) for `condition`; whether it came true, and after how long.
    static func timed(timeout: Double, _ condition: () -> Bool) -> (held: Bool, after: TimeInterval) {
        let start = Date()
        let held = eventually(timeout: timeout, condition)
        return (held, Date().timeIntervalSince(start))
    }

    /// One node: its process, folder (kept across restarts), listener and admin ports.
    final class Node {
        let name: String
        let folder: URL
        var process: GatewayProcess
        var port: Int
        var admin: Int

        init(name: String, cluster: PostgresCluster, originPort: Int, folder: URL, webhook: String? = nil, detection: String = "{ enabled: false }",
             challenge: String = "{ enabled: false }", extra: String = "", siteExtra: String = "", fleet: String = "") throws {
            self.name = name
            self.folder = folder
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let config = folder.appendingPathComponent("rampart.yaml")
            // Node b and c join through `fleet:` in the config; node a through --fleet in one-site mode.
            try """
                listeners:
                  - address: 127.0.0.1:0
                admin: { token: \(FleetTests.token) }
                alerts: { webhooks: [\(webhook ?? "")] }
                \(extra)
                fleet:
                  host: 127.0.0.1
                  port: \(cluster.port)
                  database: postgres
                  user: rampart
                  tls: disable
                  node: \(name)
                \(fleet.isEmpty ? "" : "  " + fleet)
                sites:
                  - name: default
                    hosts: ["*"]
                    origins: [127.0.0.1:\(originPort)]
                    health_check: { enabled: false }
                    detection: \(detection)
                    challenge: \(challenge)
                    \(siteExtra)
                """.write(to: config, atomically: true, encoding: .utf8)
            (process, port, admin) = try Self.launch(name: name, folder: folder, cluster: cluster, originPort: originPort)
        }

        static func launch(name: String, folder: URL, cluster: PostgresCluster, originPort: Int) throws -> (GatewayProcess, Int, Int) {
            let state = folder.appendingPathComponent("state").path
            let arguments: [String]
            if name == "a" {
                arguments = ["run", "--listen", "127.0.0.1:0", "--origin", "127.0.0.1:\(originPort)", "--fleet", cluster.url(node: name)]
            } else {
                arguments = ["run", "--config", folder.appendingPathComponent("rampart.yaml").path]
            }
            let gw = try GatewayProcess(arguments: arguments + ["--state", state, "--admin", "127.0.0.1:0", "--threads", "2"])
            let port = try gw.waitUntilListening()[0]
            let admin = try gw.adminPort()
            return (gw, port, admin)
        }

        /// The admin token: a's was generated in its state folder (one-site mode).
        var token: String {
            name == "a" ? ((try? String(contentsOf: folder.appendingPathComponent("state/admin.token"), encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines) : FleetTests.token
        }

        func restart(cluster: PostgresCluster, originPort: Int) throws {
            process.signal(SIGTERM)
            _ = process.waitForExit()
            (process, port, admin) = try Self.launch(name: name, folder: folder, cluster: cluster, originPort: originPort)
        }

        func call(_ method: String, _ path: String, body: String = "") throws -> HTTPReply? {
            try RawClient(port: admin).request(method, path, headers: ["Authorization: Bearer \(token)", "Content-Type: application/json"], body: body)
        }

        /// `GET /api/fleet`.
        func fleet() throws -> [String: Any] {
            guard let reply = try call("GET", "/api/fleet"), reply.status == 200 else { return [:] }
            return (try? JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any]) ?? [:]
        }

        /// The default site's mode ("?" when unknown).
        var mode: String {
            guard let reply = try? call("GET", "/api/sites"), reply.status == 200,
                let sites = try? JSONSerialization.jsonObject(with: Data(reply.body)) as? [[String: Any]],
                let site = sites.first(where: { $0["site"] as? String == "default" }) else { return "?" }
            return site["mode"] as? String ?? "?"
        }

        /// The default site's operator override ("" when automatic).
        var override: String {
            guard let reply = try? call("GET", "/api/sites"), reply.status == 200,
                let sites = try? JSONSerialization.jsonObject(with: Data(reply.body)) as? [[String: Any]],
                let site = sites.first(where: { $0["site"] as? String == "default" }) else { return "?" }
            return site["override"] as? String ?? ""
        }

        var connected: Bool { ((try? fleet())?["connected"] as? Bool) == true }

        /// True when a new connection from `source` is refused (closed before any answer).
        func refuses(_ source: String) -> Bool {
            guard let client = try? RawClient(port: port, source: source) else { return false }
            client.setTimeout(2)
            return client.request("GET", "/", headers: ["User-Agent: fleet-test"]) == nil
        }

        /// True when a request from `source` gets the origin's page.
        func serves(_ source: String) -> Bool {
            guard let client = try? RawClient(port: port, source: source) else { return false }
            client.setTimeout(5)
            return client.request("GET", "/", headers: ["User-Agent: fleet-test"])?.status == 200
        }

        func metric(_ name: String) -> Double? {
            guard let reply = try? call("GET", "/metrics") else { return nil }
            let text = String(decoding: reply.body, as: UTF8.self)
            return text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
        }

        func stop() { process.stop() }
    }

    /// Starts the cluster, an origin and nodes a, b, c at once (so they migrate the schema at once).
    /// A throwaway cluster, a demo origin and a folder for the nodes' state, removed by ``close()``.
    final class FleetFixture {
        let cluster: PostgresCluster
        let origin = DemoOrigin()
        let originPort: Int
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-fleet-\(UUID().uuidString)")

        init() async throws {
            cluster = try PostgresCluster()
            do {
                originPort = try await origin.start()
            } catch {
                cluster.stop(immediate: true)
                throw error
            }
        }

        func close() {
            cluster.stop(immediate: true)
            let origin = self.origin
            Task { await origin.stop() }
            try? FileManager.default.removeItem(at: root)
        }
    }

    static func fleet(_ cluster: PostgresCluster, originPort: Int, root: URL, webhook: String? = nil) throws -> [Node] {
        let names = ["a", "b", "c"]
        var nodes: [Node] = []
        for name in names {
            nodes.append(try Node(name: name, cluster: cluster, originPort: originPort, folder: root.appendingPathComponent(name), webhook: webhook))
        }
        let joined = eventually(timeout: 20) { nodes.allSatisfy(\.connected) }
        if !joined {
            throw TestFailure("nodes did not join: \(nodes.map { "\($0.name): \((try? $0.fleet()) ?? [:]) \($0.process.stderrText)" })\n\(cluster.log)")
        }
        return nodes
    }

    @Test func aBanOnOneNodeIsEnforcedOnTheOthersWithinOneSecondAndARestartedNodeCatchesUp() async throws {
        let fixture = try await FleetFixture()
        defer { fixture.close() }
        let (cluster, originPort, root) = (fixture.cluster, fixture.originPort, fixture.root)
        let nodes = try Self.fleet(cluster, originPort: originPort, root: root)
        defer { nodes.forEach { $0.stop() } }
        let (a, b, c) = (nodes[0], nodes[1], nodes[2])

        // Three nodes that started at once migrated the schema once.
        #expect(try cluster.sql("SELECT string_agg(version::text, ',' ORDER BY version) FROM rampart_schema") == "1,2,3,4,5,6")
        let source = "127.0.0.77"
        #expect(b.serves(source) && c.serves(source))

        // A ban through a's admin API refuses the source on b and c within a second.
        let started = Date()
        #expect(try a.call("POST", "/api/bans", body: #"{"address":"\#(source)","ttl":600,"reason":"fleet test"}"#)?.status == 201)
        let enforced = eventually(timeout: 5) { b.refuses(source) && c.refuses(source) }
        let elapsed = Date().timeIntervalSince(started)
        #expect(enforced)
        #expect(elapsed < 1.0, "the ban took \(elapsed) s to reach b and c")
        print("fleet: a ban made on a was refused on b and c after \(Int(elapsed * 1000)) ms (polled every 50 ms)")
        #expect(a.refuses(source))
        // b lists it with its reason and where it came from.
        let list = String(decoding: try #require(try b.call("GET", "/api/bans?filter=\(source)")).body, as: UTF8.self)
        #expect(list.contains("fleet test"))

        // An unban on b lifts it everywhere (a tombstone, not a missing row).
        #expect(try b.call("DELETE", "/api/bans/\(source)")?.status == 204)
        #expect(eventually(timeout: 3) { a.serves(source) && c.serves(source) })
        #expect(try cluster.sql("SELECT lifted FROM rampart_bans WHERE address = '\(source)'") == "t")

        // An operator's mode set on b holds on a and c within a second; `rampart mode … auto` on c
        // returns every node to automatic mode.
        let modeSet = Date()
        #expect(try b.call("PUT", "/api/sites/default/mode", body: #"{"mode":"under_attack"}"#)?.status == 200)
        #expect(eventually(timeout: 5) { a.override == "under_attack" && c.override == "under_attack" })
        let modeElapsed = Date().timeIntervalSince(modeSet)
        #expect(modeElapsed < 1.0, "the mode took \(modeElapsed) s to reach a and c")
        print("fleet: a mode set on b held on a and c after \(Int(modeElapsed * 1000)) ms (polled every 50 ms)")

        // Every node took the fleet's signing key, so a clearance from one node passes on another:
        // one signed with c's key opens a's site under attack; one signed with another key does not.
        let keys = [a, b, c].map { FileManager.default.contents(atPath: $0.folder.appendingPathComponent("state/signing.key").path) ?? Data() }
        #expect(keys[0].count == 32 && keys[0] == keys[1] && keys[1] == keys[2])
        let agent = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"
        let fromC = try KeyRotationTests.clearance(secret: Array(keys[2]), client: "127.0.0.90", agent: agent)
        let foreign = try KeyRotationTests.clearance(secret: Array(repeating: 7, count: 32), client: "127.0.0.91", agent: agent)
        let passed = try RawClient(port: a.port, source: "127.0.0.90").request("POST", "/login", headers: ["User-Agent: \(agent)", "Cookie: \(fromC)"], body: "u=a&p=b")
        #expect(passed?.status == 200)
        let refused = try RawClient(port: a.port, source: "127.0.0.91").request("POST", "/login", headers: ["User-Agent: \(agent)", "Cookie: \(foreign)"], body: "u=a&p=b")
        #expect(refused?.status == 429)
        let (modeStatus, modeOutput) = try runProgram(["mode", "default", "auto", "--admin", "127.0.0.1:\(c.admin)", "--token", c.token], executable: Binary.rampart)
        #expect(modeStatus == 0, "\(modeOutput)")
        #expect(eventually(timeout: 3) { a.override == "" && b.override == "" && c.override == "" })

        // c stops; a bans another source; c restarts and catches up (full read at start).
        c.process.signal(SIGTERM)
        #expect(c.process.waitForExit() == 0)
        let later = "127.0.0.78"
        #expect(try a.call("POST", "/api/bans", body: #"{"address":"\#(later)","ttl":600,"reason":"while c was away"}"#)?.status == 201)
        #expect(eventually(timeout: 3) { b.refuses(later) })
        // Old events and ended bans are pruned (a node prunes when its session starts, then every 10 minutes).
        _ = try cluster.sql("INSERT INTO rampart_events (at, node, kind, subject) VALUES (now() - interval '30 days', 'old', 'ban', '192.0.2.200')")
        _ = try cluster.sql("INSERT INTO rampart_bans (address, ends_at, reason, actor, node, decided) VALUES ('192.0.2.201', 1, 'old', 'old', 'old', 1)")
        try c.restart(cluster: cluster, originPort: originPort)
        #expect(eventually(timeout: 10) { c.connected && c.refuses(later) })
        #expect(c.serves(source))
        #expect(eventually(timeout: 5) {
            (try? cluster.sql("SELECT (SELECT count(*) FROM rampart_events WHERE node = 'old') + (SELECT count(*) FROM rampart_bans WHERE node = 'old')")) == "0"
        })

        // Every node shows the others with a heartbeat; `rampart fleet status` prints them.
        let seen = eventually(timeout: 5) { [a, b].allSatisfy { (((try? $0.fleet())?["nodes"] as? [[String: Any]])?.count ?? 0) == 3 } }
        #expect(seen)
        let (status, output) = try runProgram(["fleet", "status", "--admin", "127.0.0.1:\(b.admin)", "--token", b.token], executable: Binary.rampart)
        #expect(status == 0, "\(output)")
        #expect(output.contains("connected") && output.contains("\na ") && output.contains("\nc "), "\(output)")
    }

    @Test func theFleetsSummedTrafficRaisesTheModeWhereEachNodeAloneSeesAThird() async throws {
        let fixture = try await FleetFixture()
        defer { fixture.close() }
        let (cluster, originPort, root) = (fixture.cluster, fixture.originPort, fixture.root)
        // Elevated at 1.5 x max(baseline, 30/s) = 45 requests/s held 2 s. Each node gets 20/s: alone
        // it never gets there; the fleet's sum, 60/s, does (with room for a baseline learned from
        // the first seconds, before every node's counts arrive).
        let detection = "{ enabled: true, min_rate: 30/s, elevated_factor: 1.5, sustain: 2s }"
        var nodes: [Node] = []
        for name in ["p", "q", "r"] {
            nodes.append(try Node(name: name, cluster: cluster, originPort: originPort, folder: root.appendingPathComponent(name), detection: detection))
        }
        defer { nodes.forEach { $0.stop() } }
        #expect(eventually(timeout: 20) { nodes.allSatisfy(\.connected) })
        let ports = nodes.map(\.port)
        let started = Date()
        let senders = (0..<3).map { i in
            Thread {
                // 20 requests a second for at most 12 s, each from its own address (no per-source limit bites).
                for n in 0..<(20 * 12) {
                    let due = started.addingTimeInterval(Double(n) / 20)
                    let wait = due.timeIntervalSinceNow
                    if wait > 0 { usleep(useconds_t(wait * 1_000_000)) }
                    if Date().timeIntervalSince(started) > 12 { break }
                    let client = try? RawClient(port: ports[i], source: "127.0.\(10 + i).\(n % 250 + 1)")
                    client?.setTimeout(2)
                    _ = client?.request("GET", "/", headers: ["User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"])
                }
            }
        }
        senders.forEach { $0.start() }
        let raised = eventually(timeout: 11) { nodes.allSatisfy { $0.mode == "elevated" || $0.mode == "under_attack" } }
        let elapsed = Date().timeIntervalSince(started)
        #expect(raised, "modes: \(nodes.map(\.mode)); p: \(String(decoding: (try? nodes[0].call("GET", "/api/sites"))?.body ?? [], as: UTF8.self)); p fleet: \((try? nodes[0].fleet()) ?? [:])")
        if raised { print("fleet: 3 x 20 requests/s raised every node to elevated after \(Int(elapsed * 1000)) ms") }
        while senders.contains(where: { !$0.isFinished }) { usleep(50_000) }
    }

    @Test func twoNodesStartingAtOnceMigrateTheSchemaOnce() async throws {
        let cluster = try PostgresCluster()
        defer { cluster.stop(immediate: true) }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-fleet-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        // Both processes are launched before either is waited for: each migrates the empty
        // database at start (before it listens), so the two migrations run at the same time.
        let gateways = try ["x", "y"].map { name in
            try GatewayProcess(arguments: [
                "run", "--listen", "127.0.0.1:0", "--origin", "127.0.0.1:9", "--admin", "127.0.0.1:0", "--threads", "1",
                "--state", root.appendingPathComponent(name).path, "--fleet", cluster.url(node: name),
            ])
        }
        defer { gateways.forEach { $0.stop() } }
        for gw in gateways { try gw.waitUntilListening() }
        #expect(try cluster.sql("SELECT string_agg(version::text, ',' ORDER BY version) FROM rampart_schema") == "1,2,3,4,5,6")
        for gw in gateways {
            #expect(!gw.stderrText.contains("cannot agree on the signing key"), "\(gw.stderrText)")
            #expect(eventually(timeout: 10) { gw.stderrText.contains("joined the fleet") }, "\(gw.stderrText)")
        }
        #expect(eventually(timeout: 5) { (try? cluster.sql("SELECT count(*) FROM rampart_nodes")) == "2" })
    }

    @Test func theDatabaseGoingAwayFailsNoRequestAndTheOutboxIsReplayedWhenItReturns() async throws {
        let fixture = try await FleetFixture()
        defer { fixture.close() }
        let (cluster, originPort, root) = (fixture.cluster, fixture.originPort, fixture.root)
        let receiver = try ToolProcess("webhook_receiver.py", ["60"])
        defer { receiver.stop() }
        let nodes = try Self.fleet(cluster, originPort: originPort, root: root, webhook: "http://127.0.0.1:\(try receiver.port())/")
        defer { nodes.forEach { $0.stop() } }
        let (a, b, c) = (nodes[0], nodes[1], nodes[2])
        #expect(a.metric("rampart_fleet_connected") == 1)

        // Legitimate traffic to every node while the database is stopped immediately.
        var failed = 0
        var sent = 0
        func traffic(_ rounds: Int) {
            for _ in 0..<rounds {
                for node in nodes {
                    sent += 1
                    if !node.serves("127.0.0.20") { failed += 1 }
                }
            }
        }
        traffic(5)
        cluster.stop(immediate: true)
        traffic(10)
        #expect(eventually(timeout: 10) { !a.connected && !b.connected })
        #expect(a.metric("rampart_fleet_connected") == 0)
        traffic(5)

        // A ban on a while the database is down holds on a and waits in its outbox.
        let source = "127.0.0.88"
        #expect(try a.call("POST", "/api/bans", body: #"{"address":"\#(source)","ttl":600,"reason":"while down"}"#)?.status == 201)
        #expect(a.refuses(source))
        #expect(eventually(timeout: 5) { ((try? a.fleet())?["outbox"] as? Int) == 1 })
        #expect(a.metric("rampart_fleet_outbox_size") == 1)
        #expect(a.metric("rampart_fleet_sync_lag_seconds").map { $0 >= 1 } == true)
        #expect(b.serves(source))
        // Another ban on a, then (a second later, so decided later) an unban of it on b, both
        // queued: whichever outbox reaches the database first, the unban wins everywhere.
        let lifted = "127.0.0.89"
        #expect(try a.call("POST", "/api/bans", body: #"{"address":"\#(lifted)","ttl":600,"reason":"lifted later"}"#)?.status == 201)
        #expect(a.refuses(lifted))
        usleep(1_100_000)
        _ = try b.call("DELETE", "/api/bans/\(lifted)")
        #expect(eventually(timeout: 5) { ((try? b.fleet())?["outbox"] as? Int) == 1 })
        traffic(5)

        // The database returns: every node reconnects, a replays its outbox, b and c converge.
        try cluster.start()
        #expect(eventually(timeout: 15) { nodes.allSatisfy(\.connected) })
        #expect(eventually(timeout: 5) { b.refuses(source) && c.refuses(source) })
        // a counts its outbox once every entry is sent and merged back, a few statements after b
        // and c applied the ban.
        #expect(eventually(timeout: 3) { ((try? a.fleet())?["outbox"] as? Int) == 0 })
        #expect(eventually(timeout: 5) { a.serves(lifted) && b.serves(lifted) && c.serves(lifted) })
        #expect(try cluster.sql("SELECT lifted FROM rampart_bans WHERE address = '\(lifted)'") == "t")
        traffic(5)
        #expect(failed == 0, "\(failed) of \(sent) legitimate requests failed")
        // b and c (configured with a webhook) said they lost the database, and that it is back.
        #expect(eventually(timeout: 10) {
            let lines = receiver.output.all.filter { $0.hasPrefix("200 ") }
            return ["b", "c"].allSatisfy { node in
                lines.contains { $0.contains(#""kind":"fleet_degraded""#) && $0.contains(#""site":"\#(node)""#) }
                    && lines.contains { $0.contains(#""kind":"fleet_restored""#) && $0.contains(#""site":"\#(node)""#) }
            }
        }, "\(receiver.output.text)")
    }

    /// A node for the tests of revocations, rules and incidents: challenges on (cookie tier, a
    /// clearance worth 5 requests/s), no rate limits and no automatic bans, so only the
    /// clearance's own limit and the operator's rules refuse anyone.
    static func sharingNode(_ name: String, _ fixture: FleetFixture) throws -> Node {
        try Node(
            name: name, cluster: fixture.cluster, originPort: fixture.originPort, folder: fixture.root.appendingPathComponent(name),
            challenge: "{ tier: cookie, clearance_rate: 5/s, clearance_burst: 10 }", extra: "bans: { enabled: false }", siteExtra: "rate_limits: []"
        )
    }

    @Test func revocationsRulesAndIncidentsAreSharedByTheFleet() async throws {
        let fixture = try await FleetFixture()
        defer { fixture.close() }
        let (r1, r2) = (try Self.sharingNode("r1", fixture), try Self.sharingNode("r2", fixture))
        var nodes = [r1, r2]
        defer { nodes.forEach { $0.stop() } }
        #expect(eventually(timeout: 20) { nodes.allSatisfy(\.connected) }, "\(r1.process.stderrText)")
        #expect(try r1.call("PUT", "/api/sites/default/mode", body: #"{"mode":"under_attack"}"#)?.status == 200)
        #expect(eventually(timeout: 5) { r2.override == "under_attack" })

        // A clearance (signed with the fleet's key) passes on r2; its holder then overuses it on r1
        // until r1 revokes it (r1 then refuses it as no clearance at all, not as one over its rate).
        // POSTs: under attack, GETs would also meet the behaviour check (challenged harder).
        let key = try #require(FileManager.default.contents(atPath: r1.folder.appendingPathComponent("state/signing.key").path))
        let agent = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"
        let holder = "127.0.0.95"
        let cookie = try KeyRotationTests.clearance(secret: Array(key), client: holder, agent: agent)
        func login(_ node: Node) -> HTTPReply? {
            try? RawClient(port: node.port, source: holder).request("POST", "/login", headers: ["User-Agent: \(agent)", "Cookie: \(cookie)"], body: "u=a&p=b")
        }
        /// Refused for want of a clearance (not for the clearance's own rate).
        func refusedAsUncleared(_ reply: HTTPReply?) -> Bool {
            reply?.status == 429 && String(decoding: reply?.body ?? [], as: UTF8.self).contains("heavy load")
        }
        #expect(login(r2)?.status == 200)
        var abuser = try RawClient(port: r1.port, source: holder)
        var revokedAt: Date?
        var statuses: [Int] = []
        for _ in 0..<200 {
            guard let reply = abuser.request("POST", "/login", headers: ["User-Agent: \(agent)", "Cookie: \(cookie)"], body: "u=a&p=b") else {
                // A refusal may close the connection: the next request comes on a new one.
                abuser = try RawClient(port: r1.port, source: holder)
                continue
            }
            statuses.append(reply.status)
            if refusedAsUncleared(reply) {
                revokedAt = Date()
                break
            }
        }
        let revoked = try #require(revokedAt, "r1 never revoked the clearance: \(statuses)")
        let refusedOnR2 = eventually(timeout: 5) { refusedAsUncleared(login(r2)) }
        let revocationElapsed = Date().timeIntervalSince(revoked)
        #expect(refusedOnR2)
        #expect(revocationElapsed < 1.0, "the revocation took \(revocationElapsed) s to reach r2")
        print("fleet: a clearance revoked on r1 was refused on r2 after \(Int(revocationElapsed * 1000)) ms (polled every 50 ms)")
        #expect(try fixture.cluster.sql("SELECT count(*) FROM rampart_revocations") == "1")

        // A deny rule added on r1 refuses its block on r2; an allow rule added on r2 is listed on r1.
        let denied = "127.0.0.96"
        #expect(r2.serves(denied) || (try? RawClient(port: r2.port, source: denied).request("GET", "/"))?.status == 302)
        let ruleAdded = Date()
        let added = try #require(try r1.call("POST", "/api/rules", body: #"{"action":"deny","block":"127.0.0.96/32","reason":"fleet test"}"#))
        #expect(added.status == 201, "\(String(decoding: added.body, as: UTF8.self))")
        let denyID = try #require((try JSONSerialization.jsonObject(with: Data(added.body)) as? [String: Any])?["id"] as? String)
        func forbidden(_ node: Node, _ source: String) -> Bool {
            (try? RawClient(port: node.port, source: source).request("GET", "/", headers: ["User-Agent: fleet-test"]))?.status == 403
        }
        #expect(eventually(timeout: 5) { forbidden(r2, denied) })
        let ruleElapsed = Date().timeIntervalSince(ruleAdded)
        #expect(ruleElapsed < 1.0, "the rule took \(ruleElapsed) s to reach r2")
        print("fleet: a deny rule added on r1 refused its block on r2 after \(Int(ruleElapsed * 1000)) ms (polled every 50 ms)")
        #expect(forbidden(r1, denied))
        #expect(try r2.call("POST", "/api/rules", body: #"{"action":"allow","block":"192.0.2.0/24","site":"default","ttl":600}"#)?.status == 201)
        #expect(eventually(timeout: 5) { String(decoding: (try? r1.call("GET", "/api/rules"))?.body ?? [], as: UTF8.self).contains("192.0.2.0") })

        // A node that joins later reads the revocation and the rules in full at start.
        let r3 = try Self.sharingNode("r3", fixture)
        nodes.append(r3)
        #expect(eventually(timeout: 20) { r3.connected })
        #expect(eventually(timeout: 5) { r3.override == "under_attack" && forbidden(r3, denied) && refusedAsUncleared(login(r3)) })
        let (listStatus, ruleList) = try runProgram(["rules", "list", "--admin", "127.0.0.1:\(r3.admin)", "--token", r3.token], executable: Binary.rampart)
        #expect(listStatus == 0 && ruleList.contains("192.0.2.0/24") && ruleList.contains("allow"), "\(ruleList)")

        // The deny rule removed on r2 lifts it everywhere.
        #expect(try r2.call("DELETE", "/api/rules/\(denyID)")?.status == 204)
        #expect(eventually(timeout: 5) { !forbidden(r1, denied) && !forbidden(r3, denied) })

        // The attack ends: every node's incident closes, and they are one fleet incident with each
        // node's own figures (r1 took the clearance's flood).
        #expect(try r3.call("PUT", "/api/sites/default/mode", body: #"{"mode":"auto"}"#)?.status == 200)
        var fleetIncident: [String: Any] = [:]
        let shared = eventually(timeout: 15) {
            guard let reply = try? r2.call("GET", "/api/incidents"),
                let list = try? JSONSerialization.jsonObject(with: Data(reply.body)) as? [[String: Any]],
                let fleet = list.first?["fleet"] as? [String: Any], let parts = fleet["nodes"] as? [[String: Any]] else { return false }
            fleetIncident = fleet
            return Set(parts.compactMap { $0["node"] as? String }) == ["r1", "r2", "r3"] && parts.allSatisfy { $0["end"] != nil } && fleet["end"] != nil
        }
        #expect(shared, "\(fleetIncident)")
        let parts = (fleetIncident["nodes"] as? [[String: Any]]) ?? []
        let r1Requests = parts.first { $0["node"] as? String == "r1" }?["requests"] as? Int ?? 0
        #expect(r1Requests >= statuses.count, "r1's figures: \(parts)")
        #expect(try fixture.cluster.sql("SELECT count(*) FROM rampart_incidents") == "1")
        let listed = try #require(try r2.call("GET", "/api/incidents"))
        let localID = try #require((try JSONSerialization.jsonObject(with: Data(listed.body)) as? [[String: Any]])?.first?["id"] as? Int)
        let report = String(decoding: try #require(try r2.call("GET", "/api/incidents/\(localID)/report?format=html")).body, as: UTF8.self)
        #expect(report.contains("Fleet: one incident over 3 nodes") && report.contains("<td>r1</td>") && report.contains("<td>r3</td>"), "\(report.prefix(3000))")
        let (incidentsStatus, incidents) = try runProgram(["incidents", "--admin", "127.0.0.1:\(r1.admin)", "--token", r1.token], executable: Binary.rampart)
        #expect(incidentsStatus == 0 && incidents.contains("node r2") && incidents.contains("node r3"), "\(incidents)")
        // The database away: a rule added on r1 holds there at once, waits in its outbox, and
        // reaches r2 and r3 when the database is back.
        fixture.cluster.stop(immediate: true)
        #expect(eventually(timeout: 10) { !r1.connected })
        #expect(try r1.call("POST", "/api/rules", body: #"{"action":"deny","block":"127.0.0.98","reason":"while down"}"#)?.status == 201)
        #expect(forbidden(r1, "127.0.0.98") && !forbidden(r2, "127.0.0.98"))
        #expect(eventually(timeout: 5) { ((try? r1.fleet())?["outbox"] as? Int) == 1 })
        try fixture.cluster.start()
        #expect(eventually(timeout: 15) { forbidden(r2, "127.0.0.98") && forbidden(r3, "127.0.0.98") })
        #expect(forbidden(r1, "127.0.0.98"))
        print("fleet: one incident over r1, r2, r3: \(parts.map { "\($0["node"] ?? "?"): \($0["requests"] ?? 0) requests, peak \($0["peakRequestsPerSecond"] ?? 0)/s" })")
    }

    @Test(.enabled(if: browserAvailable)) func theDashboardOfOneNodeShowsEveryNodeInItsFleetPanel() async throws {
        let fixture = try await FleetFixture()
        defer { fixture.close() }
        let nodes = try ["pane-1", "pane-2"].map { try Node(name: $0, cluster: fixture.cluster, originPort: fixture.originPort, folder: fixture.root.appendingPathComponent($0)) }
        defer { nodes.forEach { $0.stop() } }
        #expect(eventually(timeout: 20) { nodes.allSatisfy { (((try? $0.fleet())?["nodes"] as? [[String: Any]])?.count ?? 0) == 2 } })
        // Rendered cells only: the page's script holds neither name nor `<td>NAME</td>`.
        let run = try BrowserTests.browse([
            "http://127.0.0.1:\(nodes[0].admin)/?token=\(FleetTests.token)",
            "--wait-for", "<td>pane-1</td>", "--wait-for", "<td>pane-2</td>", "--wait-for", "connected · node pane-1",
            "--timeout", "30", "--screenshot", BrowserTests.outputFolder.appendingPathComponent("dashboard-fleet.png").path,
        ])
        #expect(run.status == 0, "\(run.output.prefix(4000))")
        let page = run.output
        #expect(!page.contains("<section class=\"wide\" id=\"fleet\" hidden"), "the fleet panel stayed hidden")
    }

    @Test func aModeRaisedByOneNodesDetectionHoldsOnTheOthersUntilNoOneRenewsIt() async throws {
        let fixture = try await FleetFixture()
        defer { fixture.close() }
        let (cluster, originPort, root) = (fixture.cluster, fixture.originPort, fixture.root)
        // p's detector raises the site to elevated at 1.5 x 10 = 15 requests/s; q's and r's never
        // would (they see p's traffic in the fleet's sums, far below 10,000/s). Raised modes live
        // 2 s unless renewed.
        let ttl = "mode_ttl: 2s"
        let p = try Node(name: "p", cluster: cluster, originPort: originPort, folder: root.appendingPathComponent("p"),
                         detection: "{ enabled: true, min_rate: 10/s, elevated_factor: 1.5, sustain: 1s }", fleet: ttl)
        let others = try ["q", "r"].map { name in
            try Node(name: name, cluster: cluster, originPort: originPort, folder: root.appendingPathComponent(name),
                     detection: "{ enabled: true, min_rate: 10000/s }", fleet: ttl)
        }
        let nodes = [p] + others
        defer { nodes.forEach { $0.stop() } }
        #expect(eventually(timeout: 20) { nodes.allSatisfy(\.connected) })

        // 40 requests a second to p only, each from its own address, until told to stop.
        let port = p.port
        let running = ManagedAtomicFlag()
        let sender = Thread {
            let started = Date()
            var n = 0
            while running.isSet, Date().timeIntervalSince(started) < 15 {
                let wait = started.addingTimeInterval(Double(n) / 40).timeIntervalSinceNow
                if wait > 0 { usleep(useconds_t(wait * 1_000_000)) }
                let client = try? RawClient(port: port, source: "127.0.30.\(n % 250 + 1)")
                client?.setTimeout(2)
                _ = client?.request("GET", "/", headers: ["User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"])
                n += 1
            }
        }
        sender.start()
        defer { running.clear(); while !sender.isFinished { usleep(20_000) } }
        #expect(eventually(timeout: 8) { p.mode == "elevated" }, "p: \(p.mode)")
        let (followed, elapsed) = Self.timed(timeout: 5) { others.allSatisfy { $0.mode == "elevated" } }
        #expect(followed, "q, r: \(others.map(\.mode))")
        #expect(elapsed < 1.0, "the raised mode took \(elapsed) s to reach q and r")
        print("fleet: a mode raised by p's detection held on q and r after \(Int(elapsed * 1000)) ms (polled every 50 ms)")
        // Their own detectors did not raise it: it is the fleet's.
        let automatic = others.map { node -> String in
            guard let reply = try? node.call("GET", "/api/sites"), let sites = try? JSONSerialization.jsonObject(with: Data(reply.body)) as? [[String: Any]] else { return "?" }
            return sites.first { $0["site"] as? String == "default" }?["automatic_mode"] as? String ?? "?"
        }
        #expect(automatic == ["normal", "normal"])

        // /api/fleet on q shows p's last second of the site, with the mode p's detection raised.
        let rates = eventually(timeout: 3) {
            let nodesSeen = ((try? others[0].fleet())?["nodes"] as? [[String: Any]]) ?? []
            guard let row = nodesSeen.first(where: { $0["name"] as? String == "p" }),
                let site = (row["sites"] as? [[String: Any]])?.first(where: { $0["site"] as? String == "default" }) else { return false }
            return (site["requests"] as? Int ?? 0) >= 10 && site["raised_mode"] as? String == "elevated"
        }
        #expect(rates, "\((try? others[0].fleet()) ?? [:])")
        let (status, output) = try runProgram(["fleet", "status", "--admin", "127.0.0.1:\(others[1].admin)", "--token", others[1].token], executable: Binary.rampart)
        #expect(status == 0 && output.contains("default") && output.contains("raised elevated"), "\(output)")

        // p dies without withdrawing it: q and r go back to normal once its lease runs out.
        running.clear()
        p.stop()
        let (lapsed, lapse) = Self.timed(timeout: 6) { others.allSatisfy { $0.mode == "normal" } }
        #expect(lapsed, "q, r: \(others.map(\.mode))")
        #expect(lapse < 3.5, "fell back after \(lapse) s with a 2 s time to live")
        print("fleet: q and r fell back to normal \(Int(lapse * 1000)) ms after p stopped renewing (time to live 2 s)")
    }
}
}
