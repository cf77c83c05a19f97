import Foundation
import RampartCore
import RampartDemoOrigin
import RampartState
import Testing
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// True when this machine can build MaxMind DB files for the tests (PyPI mmdb-writer).
let mmdbWriterAvailable: Bool = {
    (try? runProgram(["python3", "-c", "import mmdb_writer, netaddr"]))?.0 == 0
}()

/// Kernel tests need root, `ip netns` and nftables; the geo tests need libmaxminddb-dev at build
/// time and PyPI mmdb-writer. With RAMPART_REQUIRE_NFT=1 (set by `.ci/run`) neither suite can be
/// skipped: a missing piece fails them instead.
let nftRequired = ProcessInfo.processInfo.environment["RAMPART_REQUIRE_NFT"] == "1"
let nftAvailable: Bool = {
    guard geteuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/nft") || FileManager.default.isExecutableFile(atPath: "/sbin/nft")
    else { return false }
    // Creating a namespace proves the kernel and permissions allow it.
    return (try? runProgram(["unshare", "-n", "true"]))?.0 == 0
}()

/// Country and network rules through the real binary, with MaxMind DB files built here that place
/// loopback sources in test countries and networks.
extension IntegrationTests {
// In CI (RAMPART_REQUIRE_NFT=1) these run whatever is installed: a missing tool fails them.
@Suite(.serialized, .enabled(if: (mmdbWriterAvailable && maxMindDBAvailable) || nftRequired)) struct GeoRuleTests {
    /// Writes a country MMDB and an ASN MMDB into `folder`.
    static func makeDatabases(in folder: URL) throws -> (country: String, asn: String) {
        let country = folder.appendingPathComponent("country.mmdb").path
        let asn = folder.appendingPathComponent("asn.mmdb").path
        let script = """
            import sys
            from mmdb_writer import MMDBWriter
            from netaddr import IPSet
            c = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type='Rampart-Test-Country')
            for net, cc in [('127.0.0.31/32', 'RU'), ('127.0.0.32/32', 'CN'), ('127.0.0.33/32', 'DE'), ('127.0.0.34/32', 'FR'), ('127.0.0.35/32', 'FR')]:
                c.insert_network(IPSet([net]), {'country': {'iso_code': cc, 'names': {'en': cc}}})
            c.to_db_file(sys.argv[1])
            a = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type='Rampart-Test-ASN')
            a.insert_network(IPSet(['127.0.0.35/32']), {'autonomous_system_number': 64500, 'autonomous_system_organization': 'Test Hosting'})
            a.insert_network(IPSet(['127.0.0.34/32']), {'autonomous_system_number': 64501, 'autonomous_system_organization': 'Test Access'})
            a.to_db_file(sys.argv[2])
            """
        let (status, output) = try runProgram(["python3", "-c", script, country, asn])
        guard status == 0 else { throw TestFailure("mmdb-writer failed: \(output)") }
        return (country, asn)
    }

    static func yaml(origin: Int, country: String, asn: String, log: String) -> String {
        """
        listeners:
          - address: 127.0.0.1:0
        access_log: { path: \(log) }
        admin: { token: "edge-filter-test-token-0123456789" }
        geoip:
          country_db: \(country)
          asn_db: \(asn)
          tor_geoip: off
        sites:
          - name: www
            hosts: [example.org]
            origins: [127.0.0.1:\(origin)]
            rate_limits: []
            geo_rules:
              - { asns: [64501], action: allow }
              - { countries: [RU], action: deny }
              - { countries: [CN], action: challenge }
              - { countries: [DE], action: limit, rate: 1/m, burst: 3 }
              - { asns: [AS64500], action: deny }
        """
    }

    @Test func countryAndNetworkRulesThroughTheBinary() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-geo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (country, asn) = try Self.makeDatabases(in: folder)
        let log = folder.appendingPathComponent("access.log").path
        let yaml = Self.yaml(origin: originPort, country: country, asn: asn, log: log)
        let gw = try GatewayProcess(yaml: yaml, extraArguments: ["--threads", "1"])
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        let json = "Accept: application/json"

        // RU: denied, 403 with its own reason (not the challenge).
        let ru = try #require(try RawClient(port: port, source: "127.0.0.31").request("GET", "/", headers: [json]))
        #expect(ru.status == 403)
        #expect(ru.header("x-rampart-challenge") == nil)
        #expect((ru.json["message"] as? String)?.contains("your network") == true)

        // CN: the challenge page, though the site is in normal mode.
        let cn = try #require(try RawClient(port: port, source: "127.0.0.32").request("GET", "/", headers: ["Accept: text/html", "User-Agent: Mozilla/5.0 Firefox/140.0"]))
        #expect(cn.status == 403)
        #expect(cn.header("x-rampart-challenge") != nil)

        // DE: three requests (the burst), then 429 sooner than anyone else.
        let de = try RawClient(port: port, source: "127.0.0.33")
        var deStatuses: [Int] = []
        for _ in 0..<6 { deStatuses.append(de.request("GET", "/")?.status ?? 0) }
        #expect(deStatuses == [200, 200, 200, 429, 429, 429], "\(deStatuses)")

        // FR in AS64501: allowed (the allow rule comes first), however many requests.
        let fr = try RawClient(port: port, source: "127.0.0.34")
        for _ in 0..<10 { #expect(fr.request("GET", "/")?.status == 200) }

        // FR in AS64500: denied by network.
        #expect(try RawClient(port: port, source: "127.0.0.35").request("GET", "/")?.status == 403)

        // Unknown to both databases: no rule, served.
        let other = try RawClient(port: port, source: "127.0.0.36")
        for _ in 0..<6 { #expect(other.request("GET", "/")?.status == 200) }

        // The access log carries country and network.
        #expect(eventually(timeout: 5) { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains(#""client":"127.0.0.35","country":"FR","asn":64500"#) })
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(text.contains(#""client":"127.0.0.31","country":"RU","method""#), "\(text.prefix(2000))")
        #expect(text.contains(#""client":"127.0.0.36","method""#))

        // The refusals are counted by reason.
        let admin = try gw.adminPort()
        let metrics = AdminAccessTests.call(admin, "GET", "/metrics", ["Authorization: Bearer edge-filter-test-token-0123456789"])?.text ?? ""
        #expect(metrics.contains(#"rampart_rejections_total{reason="geo_denied"} 2"#), "\(metrics.split(separator: "\n").filter { $0.contains("geo") })")

        // Where the traffic comes from is in the top lists (and so on the dashboard and in incidents).
        var top = ""
        #expect(eventually(timeout: 8) {
            for _ in 0..<24 { _ = fr.request("GET", "/") }
            usleep(300_000)
            top = AdminAccessTests.call(admin, "GET", "/api/top?n=10", ["Authorization: Bearer edge-filter-test-token-0123456789"])?.text ?? ""
            return top.contains(#""key":"FR""#) && top.contains(#""key":"AS64501""#)
        }, "\(top)")

        // `rampart geo` says the same, with the databases and the matching rules.
        let config = folder.appendingPathComponent("rampart.yaml").path
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        let (s1, o1) = try runProgram(["geo", "127.0.0.35", "--config", config], executable: Binary.rampart)
        #expect(s1 == 0, "\(o1)")
        #expect(o1.contains("country: FR (from Rampart-Test-Country"), "\(o1)")
        #expect(o1.contains("network: AS64500 Test Hosting (from Rampart-Test-ASN"), "\(o1)")
        #expect(o1.contains("site www: geo_rules[4] matches: deny"), "\(o1)")
        let (s2, o2) = try runProgram(["geo", "127.0.0.36", "--config", config], executable: Binary.rampart)
        #expect(s2 == 0)
        #expect(o2.contains("country: unknown") && o2.contains("site www: no geo rule matches"), "\(o2)")
        let (s3, o3) = try runProgram(["geo", "not-an-address"], executable: Binary.rampart)
        #expect(s3 != 0 && o3.contains("not an IPv4 or IPv6 address"), "\(o3)")
    }

    @Test func checkRefusesBadCodesAndCorruptDatabasesWithFileLineAndKey() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-geo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let corrupt = folder.appendingPathComponent("corrupt.mmdb").path
        try Data(repeating: 0x5A, count: 10_000).write(to: URL(fileURLWithPath: corrupt))
        let config = folder.appendingPathComponent("bad.yaml").path
        try """
            listeners: [{address: "127.0.0.1:8080"}]
            geoip: { asn_db: \(corrupt) }
            sites:
              - name: www
                hosts: ["*"]
                origins: [127.0.0.1:9000]
                geo_rules:
                  - { countries: [XX], action: deny }
                  - { asns: [0], action: deny }
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let (status, output) = try runProgram(["check", "--config", config], executable: Binary.rampart)
        #expect(status == 1)
        #expect(output.contains("bad.yaml:2:"), "\(output)")
        #expect(output.contains("geoip.asn_db: cannot open the MaxMind DB file"), "\(output)")
        #expect(output.contains("bad.yaml:8:") && output.contains("sites[0].geo_rules[0].countries[0]: 'XX' is not an assigned"), "\(output)")
        #expect(output.contains("sites[0].geo_rules[1].asns[0]"), "\(output)")
    }
}
}

/// A gateway inside a network namespace this test creates, with `bans.kernel: nftables`: the
/// kernel drops a banned source's connections before the gateway sees them. Everything (the
/// gateway, the probes, the admin calls) runs inside the namespace; the host's ruleset is never
/// touched.
extension IntegrationTests {
@Suite(.serialized, .enabled(if: nftAvailable || nftRequired)) struct KernelBanTests {
    static let token = "kernel-ban-test-token-0123456789"

    /// A network namespace with loopback up, deleted by `close()`.
    final class Namespace {
        let name = "rampart-test-\(UInt32.random(in: 0...UInt32.max))"
        init() throws {
            guard nftAvailable else { throw TestFailure("RAMPART_REQUIRE_NFT=1 but this is not root, or unshare/ip netns/nft are unavailable") }
            let (s, o) = try runProgram(["ip", "netns", "add", name])
            guard s == 0 else { throw TestFailure("ip netns add failed: \(o)") }
            _ = try runProgram(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"])
        }
        func run(_ arguments: [String]) throws -> (Int32, String) { try runProgram(["ip", "netns", "exec", name] + arguments) }
        func close() { _ = try? runProgram(["ip", "netns", "delete", name]) }
    }

    /// Python, inside the namespace: `connect SRC PORT` prints connected or timeout (1 s);
    /// `http METHOD URL [BODY]` prints the status and the body.
    static let probe = """
        import socket, sys, urllib.request
        if sys.argv[1] == 'connect':
            n = int(sys.argv[4]) if len(sys.argv) > 4 else 1
            ok = 0
            for _ in range(n):
                s = socket.socket(); s.settimeout(1.0); s.bind((sys.argv[2], 0))
                try:
                    s.connect(('127.0.0.1', int(sys.argv[3]))); ok += 1
                except OSError:
                    pass
                s.close()
            print('connected' if ok == n else ('timeout' if ok == 0 else 'partial %d' % ok))
        elif sys.argv[1] == 'request':
            s = socket.socket(); s.settimeout(3.0); s.bind((sys.argv[2], 0))
            try:
                s.connect(('127.0.0.1', int(sys.argv[3])))
                s.sendall(b'GET / HTTP/1.1\\r\\nHost: example.org\\r\\n\\r\\n')
                print('answered' if s.recv(100) else 'closed')
            except socket.timeout:
                print('timeout')
            except OSError:
                print('closed')
        else:
            body = sys.argv[4].encode() if len(sys.argv) > 4 else None
            r = urllib.request.Request(sys.argv[3], data=body, method=sys.argv[2], headers={'Authorization': 'Bearer \(token)', 'Content-Type': 'application/json'})
            try:
                with urllib.request.urlopen(r, timeout=10) as f: print(f.status); print(f.read().decode())
            except urllib.error.HTTPError as e:
                print(e.code); print(e.read().decode())
        """

    /// The gateway process inside `ns`, its output collected.
    final class NamespacedGateway: @unchecked Sendable {
        let process = Process()
        let output = NSLock()
        private var text = ""
        init(ns: Namespace, config: String, state: String) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", ns.name, Binary.rampart, "run", "--config", config, "--state", state, "--threads", "1"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            pipe.fileHandleForReading.readabilityHandler = { [weak self] h in
                let chunk = String(decoding: h.availableData, as: UTF8.self)
                self?.output.lock()
                self?.text += chunk
                self?.output.unlock()
            }
            try process.run()
        }
        var log: String {
            output.lock()
            defer { output.unlock() }
            return text
        }
        func stop(signal sig: Int32 = SIGTERM) {
            if process.isRunning {
                kill(process.processIdentifier, sig)
                let deadline = Date().addingTimeInterval(15)
                while process.isRunning, Date() < deadline { usleep(20_000) }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                process.waitUntilExit()
            }
        }
    }

    static func config(extra: String = "", capacity: Int = 200_000) -> String {
        """
        listeners:
          - address: 127.0.0.1:8080
        admin: { listen: "127.0.0.1:9090", token: "\(token)" }
        bans:
          kernel: nftables
          kernel_table: rampart_it
          capacity: \(capacity)
        \(extra)
        sites:
          - name: www
            hosts: ["*"]
            origins: [127.0.0.1:9]
            rate_limits: []
        """
    }

    static func metric(_ ns: Namespace, _ name: String) throws -> Double? {
        let (_, out) = try ns.run(["python3", "-c", probe, "http", "GET", "http://127.0.0.1:9090/metrics"])
        return out.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
    }

    static func connect(_ ns: Namespace, from source: String, times: Int = 1) throws -> String {
        try ns.run(["python3", "-c", probe, "connect", source, "8080", "\(times)"]).1.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func bannedSourcesAreDroppedByTheKernelAndUnbanningLetsThemBack() throws {
        let ns = try Namespace()
        defer { ns.close() }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-nft-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        // What the namespace had before (nothing, in a fresh one): the gateway adds only its table.
        let before = try ns.run(["nft", "list", "tables"]).1.split(separator: "\n").map(String.init)
        let configPath = folder.appendingPathComponent("rampart.yaml").path
        try Self.config(extra: "  kernel_on_exit: flush").write(toFile: configPath, atomically: true, encoding: .utf8)
        let hostRuleset = try runProgram(["nft", "list", "ruleset"]).1
        let gw = try NamespacedGateway(ns: ns, config: configPath, state: folder.appendingPathComponent("state").path)
        defer { gw.stop(signal: SIGKILL) }
        #expect(eventually(timeout: 30) { gw.log.contains("kernel bans on") }, "\(gw.log)")
        let tables = try ns.run(["nft", "list", "tables"]).1.split(separator: "\n").map(String.init)
        #expect(Set(tables) == Set(before + ["table inet rampart_it"]), "\(tables)")
        let table = try ns.run(["nft", "list", "table", "inet", "rampart_it"]).1
        #expect(table.contains("type filter hook prerouting priority raw"), "\(table)")
        #expect(table.contains("ip saddr @banned_v4 tcp dport 8080"), "\(table)")
        #expect(table.contains("size 200000"), "\(table)")

        // Not banned: connections are accepted and counted.
        #expect(try Self.connect(ns, from: "127.0.0.2") == "connected")
        #expect(eventually(timeout: 5) { ((try? Self.metric(ns, "rampart_connections_accepted_total")) ?? 0) ?? 0 >= 1 })

        // Banned through the admin API: the element appears, the kernel drops the SYNs, the
        // gateway's accept counter does not move.
        let (_, banned) = try ns.run(["python3", "-c", Self.probe, "http", "POST", "http://127.0.0.1:9090/api/bans", #"{"address":"127.0.0.2","ttl":600,"reason":"test"}"#])
        #expect(banned.hasPrefix("201"), "\(banned)")
        #expect(eventually(timeout: 5) { ((try? ns.run(["nft", "list", "set", "inet", "rampart_it", "banned_v4"]).1) ?? "").contains("127.0.0.2 timeout") })
        let accepted = try Self.metric(ns, "rampart_connections_accepted_total") ?? -1
        #expect(try Self.connect(ns, from: "127.0.0.2", times: 3) == "timeout")
        #expect(try Self.metric(ns, "rampart_connections_accepted_total") == accepted)
        // Others still get in.
        #expect(try Self.connect(ns, from: "127.0.0.3") == "connected")
        let counters = try ns.run(["nft", "list", "chain", "inet", "rampart_it", "drop_banned"]).1
        #expect(!counters.contains("ip saddr @banned_v4 tcp dport 8080 counter packets 0 "), "\(counters)")
        #expect(try Self.metric(ns, "rampart_kernel_bans_active") == 1)
        #expect((try Self.metric(ns, "rampart_kernel_ban_elements_total") ?? 0) >= 1)
        #expect(try Self.metric(ns, "rampart_kernel_ban_errors_total") == 0)

        // Unbanned: the element goes, connections are accepted again.
        let (_, lifted) = try ns.run(["python3", "-c", Self.probe, "http", "DELETE", "http://127.0.0.1:9090/api/bans/127.0.0.2"])
        #expect(lifted.hasPrefix("204"), "\(lifted)")
        #expect(eventually(timeout: 5) { !(((try? ns.run(["nft", "list", "set", "inet", "rampart_it", "banned_v4"]).1) ?? "").contains("127.0.0.2")) })
        #expect(try Self.connect(ns, from: "127.0.0.2") == "connected")

        // Element timeouts: a 2 s ban ends in the kernel by itself.
        let (_, short) = try ns.run(["python3", "-c", Self.probe, "http", "POST", "http://127.0.0.1:9090/api/bans", #"{"address":"127.0.0.4","ttl":2,"reason":"short"}"#])
        #expect(short.hasPrefix("201"), "\(short)")
        #expect(eventually(timeout: 5) { ((try? ns.run(["nft", "list", "set", "inet", "rampart_it", "banned_v4"]).1) ?? "").contains("127.0.0.4") })
        #expect(try Self.connect(ns, from: "127.0.0.4") == "timeout")
        #expect(eventually(timeout: 6) { !(((try? ns.run(["nft", "list", "set", "inet", "rampart_it", "banned_v4"]).1) ?? "").contains("127.0.0.4")) })
        #expect(try Self.connect(ns, from: "127.0.0.4") == "connected")

        // kernel_on_exit: flush deletes the table on a clean stop; the host never saw any of it.
        gw.stop()
        #expect(try ns.run(["nft", "list", "tables"]).1.split(separator: "\n").map(String.init) == before)
        #expect(try runProgram(["nft", "list", "ruleset"]).1 == hostRuleset)
    }

    @Test func oneHundredThousandStoredBansLoadInOneTransaction() throws {
        let ns = try Namespace()
        defer { ns.close() }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-nft-\(UUID().uuidString)")
        let state = folder.appendingPathComponent("state")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        // 100,000 bans in force in the state store (as a previous run would leave them), plus 127.0.0.2.
        // The schema comes from the store itself; the rows go in with one SQLite transaction.
        let store = try StateStore(folder: state.path, logger: Logger(label: "test"))
        let now = Int64(Date().timeIntervalSince1970)
        store.saveBan(BanRecord(address: "127.0.0.2", until: now + 3600, level: 0, reason: "load", created: now))
        store.flush()
        let seed = """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1]); now = int(sys.argv[2])
            rows = [('10.%d.%d.%d' % (i >> 16 & 255, i >> 8 & 255, i & 255), now + 3600, 0, 'load', now) for i in range(100000)]
            db.executemany('INSERT INTO ban (address, until, level, reason, created) VALUES (?, ?, ?, ?, ?)', rows); db.commit()
            """
        let (seeded, seedOutput) = try runProgram(["python3", "-c", seed, state.appendingPathComponent("state.sqlite").path, "\(now)"])
        #expect(seeded == 0, "\(seedOutput)")
        let configPath = folder.appendingPathComponent("rampart.yaml").path
        try Self.config().write(toFile: configPath, atomically: true, encoding: .utf8)
        let gw = try NamespacedGateway(ns: ns, config: configPath, state: state.path)
        defer { gw.stop(signal: SIGKILL) }
        #expect(eventually(timeout: 120) { gw.log.contains("kernel bans on") }, "\(gw.log)")
        let line = gw.log.split(separator: "\n").first { $0.contains("kernel bans on") }.map(String.init) ?? ""
        print("kernel ban load: \(line)")
        #expect(line.contains("elements=100001"), "\(line)")
        // One transaction: the table load is the only batch so far.
        #expect(try Self.metric(ns, "rampart_kernel_ban_batches_total") == 1)
        let count = try ns.run(["sh", "-c", "nft list set inet rampart_it banned_v4 | grep -o 'expires' | wc -l"]).1
        #expect(Int(count.trimmingCharacters(in: .whitespacesAndNewlines)) == 100_001, "\(count)")
        #expect(try Self.connect(ns, from: "127.0.0.2") == "timeout")
        #expect(try Self.connect(ns, from: "127.0.0.3") == "connected")
        // kernel_on_exit: keep (the default) leaves the table after a clean stop.
        gw.stop()
        #expect(try ns.run(["nft", "list", "tables"]).1.contains("table inet rampart_it"))
    }

    @Test func withoutPermissionBansStayInUserSpaceWithOneWarning() throws {
        let ns = try Namespace()
        defer { ns.close() }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-nft-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let configPath = folder.appendingPathComponent("rampart.yaml").path
        try Self.config().write(toFile: configPath, atomically: true, encoding: .utf8)
        // Without CAP_NET_ADMIN (capsh drops it): one warning, the gateway runs, bans still hold.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = [
            "netns", "exec", ns.name, "capsh", "--drop=cap_net_admin", "--",
            "-c", "exec \(Binary.rampart) run --config \(configPath) --state \(folder.appendingPathComponent("state").path) --threads 1",
        ]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let collected = NSLock()
        nonisolated(unsafe) var text = ""
        pipe.fileHandleForReading.readabilityHandler = { h in
            let chunk = String(decoding: h.availableData, as: UTF8.self)
            collected.lock(); text += chunk; collected.unlock()
        }
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() } }
        func log() -> String { collected.lock(); defer { collected.unlock() }; return text }
        #expect(eventually(timeout: 30) { log().contains("bans stay in user space") }, "\(log())")
        #expect(log().contains("CAP_NET_ADMIN"), "\(log())")
        #expect(log().components(separatedBy: "bans stay in user space").count == 2)
        #expect(try Self.connect(ns, from: "127.0.0.2") == "connected")
        let (_, banned) = try ns.run(["python3", "-c", Self.probe, "http", "POST", "http://127.0.0.1:9090/api/bans", #"{"address":"127.0.0.2","ttl":600,"reason":"test"}"#])
        #expect(banned.hasPrefix("201"), "\(banned)")
        // The user-space ban holds: the connection is accepted and closed at once.
        #expect(try ns.run(["python3", "-c", Self.probe, "request", "127.0.0.2", "8080"]).1.hasPrefix("closed"))
        #expect(try ns.run(["python3", "-c", Self.probe, "request", "127.0.0.3", "8080"]).1.hasPrefix("answered"))
        #expect(try ns.run(["nft", "list", "tables"]).1.isEmpty)
        #expect(try Self.metric(ns, "rampart_kernel_bans_active") == 0)
    }
}
}
