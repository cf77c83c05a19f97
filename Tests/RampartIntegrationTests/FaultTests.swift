import Foundation
import Logging
import RampartDemoOrigin
import RampartState
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Faults the gateway must ride out through the real binary: the origin dying and coming back in
/// the middle of a flood, and the state folder's disk full or read-only while bans are written.
extension IntegrationTests {
@Suite(.serialized) struct FaultTests {
    static func yaml(origin: Int) -> String {
        """
        listeners:
          - address: 127.0.0.1:0
            limits: { max_connections_per_ip: 100000 }
        default_site: www
        bans: { enabled: false }
        sites:
          - name: www
            hosts: [example.org]
            origins: [127.0.0.1:\(origin)]
            rate_limits: []
            detection: { enabled: false }
            health_check: { path: /healthz, interval: 1s }
            cache: { micro_ttl: 1s, stale_for: 60s }
        """
    }

    /// Statuses of the requests one client thread made, with the time each was made.
    final class Tally: @unchecked Sendable {
        private let lock = NSLock()
        private var replies: [(at: Date, path: String, status: Int)] = []

        func add(_ path: String, _ status: Int) {
            lock.lock()
            replies.append((Date(), path, status))
            lock.unlock()
        }

        func all() -> [(at: Date, path: String, status: Int)] {
            lock.lock()
            defer { lock.unlock() }
            return replies
        }
    }

    /// The origin is stopped (connections refused) for 3 s while a cache-busting flood hits the
    /// home page, then a new one starts on the same port. Every home-page request is answered
    /// 200 (stale copies while the origin is down), uncached requests get a quick 503 instead of
    /// hanging, and the returning origin sees a handful of requests, not the flood.
    @Test func theOriginDiesAndReturnsMidFlood() async throws {
        let first = DemoOrigin()
        let originPort = try await first.start()
        let gw = try GatewayProcess(yaml: Self.yaml(origin: originPort), extraArguments: ["--threads", "2"])
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        // Both event loops keep their own cache: warm them on several connections.
        for _ in 0..<6 { #expect(try RawClient(port: port).request("GET", "/")?.status == 200) }

        let tally = Tally()
        let flooding = ManagedAtomicFlag()
        let clients = (0..<4).map { n in
            Thread {
                var i = 0
                while flooding.isSet {
                    i += 1
                    let path = n == 0 && i % 5 == 0 ? "/api/items" : "/?r=\(n)-\(i)"
                    let status = (try? RawClient(port: port).request("GET", path))?.status ?? 0
                    tally.add(path, status)
                }
            }
        }
        for c in clients { c.start() }
        try await Task.sleep(for: .seconds(1))
        await first.stop()
        let down = Date()
        try await Task.sleep(for: .seconds(3))
        let second = DemoOrigin()
        try await second.start(port: originPort)
        defer { Task { await second.stop() } }
        let back = Date()
        try await Task.sleep(for: .seconds(3))
        flooding.clear()
        try await Task.sleep(for: .milliseconds(500))

        let replies = tally.all()
        let home = replies.filter { $0.path.hasPrefix("/?") }
        #expect(home.count > 200, "the flood made \(home.count) home-page requests")
        #expect(home.allSatisfy { $0.status == 200 }, "home page: \(Dictionary(grouping: home, by: { $0.status }).mapValues(\.count))")
        let uncachedWhileDown = replies.filter { $0.path == "/api/items" && $0.at > down.addingTimeInterval(0.5) && $0.at < back }
        #expect(!uncachedWhileDown.isEmpty && uncachedWhileDown.allSatisfy { $0.status == 503 }, "\(uncachedWhileDown.map { $0.status })")
        let uncachedAfter = replies.filter { $0.path == "/api/items" && $0.at > back.addingTimeInterval(1.5) }
        #expect(!uncachedAfter.isEmpty && uncachedAfter.allSatisfy { $0.status == 200 }, "\(uncachedAfter.map { $0.status })")
        // The returning origin: health checks, a refresh per loop per second, the /api requests.
        let apiAfter = replies.filter { $0.path == "/api/items" && $0.at > back }.count
        let seen = second.stats.requests
        #expect(seen <= apiAfter + 3 * 4 + 2 * 4 + 4, "the origin saw \(seen) requests; the flood sent \(replies.filter { $0.at > back }.count)")
    }

    /// The state folder on a tmpfs of 1 MB, filled up, then made read-only, while bans are
    /// issued: the gateway keeps serving, says so in the log, in /metrics and in the dashboard's
    /// stream, and writes every ban once space returns. Needs root for the mount (CI runs as root).
    @Test func aFullOrReadOnlyStateDiskCostsNoRequestAndNoBan() async throws {
        guard geteuid() == 0 else {
            print("skipped: mounting a tmpfs needs root (CI runs as root)")
            return
        }
        let dir = try TLSTests.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let mount = dir.appendingPathComponent("disk").path
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        let (mounted, why) = try runProgram(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mount])
        try #require(mounted == 0, "\(why)")
        defer { _ = try? runProgram(["umount", "-l", mount]) }
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let state = "\(mount)/state"
        let gw = try GatewayProcess(arguments: [
            "run", "--listen", "127.0.0.1:0", "--origin", "127.0.0.1:\(originPort)", "--admin", "127.0.0.1:0", "--state", state,
        ])
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        let admin = try gw.adminLink()
        func ban(_ address: String) throws -> Int {
            try IncidentReportTests.call(admin.port, admin.token, "POST", "/api/bans", #"{"address":"\#(address)","ttl":3600,"reason":"manual"}"#)
        }
        func metric(_ name: String) -> Double? {
            let text = (try? RawClient(port: admin.port).request("GET", "/metrics", headers: ["Authorization: Bearer \(admin.token)"]))?.text ?? ""
            return text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
        }
        #expect(try ban("198.51.100.1") / 100 == 2)
        #expect(eventually { metric("rampart_state_writable") == 1 })

        // Disk full.
        let filler = FileManager.default.createFile(atPath: "\(mount)/filler", contents: nil) ? FileHandle(forWritingAtPath: "\(mount)/filler") : nil
        let block = Data(count: 64 * 1024)
        while (try? filler?.write(contentsOf: block)) != nil {}
        try? filler?.close()
        for i in 2...40 { #expect(try ban("198.51.100.\(i)") / 100 == 2) }
        #expect(eventually { metric("rampart_state_writable") == 0 }, "\(gw.stderrText.suffix(600))")
        #expect((metric("rampart_state_pending_writes") ?? 0) >= 1)
        #expect(gw.stderrText.contains("state database not writable"))
        let stats = try #require(try RawClient(port: admin.port).request("GET", "/api/stats", headers: ["Authorization: Bearer \(admin.token)"]))
        #expect((stats.json["state"] as? [String: Any])?["writable"] as? Bool == false, "\(stats.text.prefix(300))")
        #expect(try RawClient(port: port).request("GET", "/")?.status == 200, "serving goes on")
        // Read-only as well (a read-only bind mount over the folder: the database stays open, no
        // journal can be made), so nothing is written even once space is back.
        #expect(try runProgram(["mount", "--bind", state, state]).0 == 0)
        let (readOnly, roOutput) = try runProgram(["mount", "-o", "remount,bind,ro", state])
        #expect(readOnly == 0, "\(roOutput)")
        try FileManager.default.removeItem(atPath: "\(mount)/filler")
        for i in 41...50 { #expect(try ban("198.51.100.\(i)") / 100 == 2) }
        let readOnlySince = Date()
        // The dashboard says so in its header (a real browser, when chromium is there: CI has it).
        if browserAvailable {
            let page = try BrowserTests.browse([
                "http://127.0.0.1:\(admin.port)/?token=\(admin.token)", "--wait-for", "live · ",
                // The rendered banner, not the script's text for it.
                "--wait-for", #"role="alert">State not saved: "#, "--timeout", "30",
            ])
            #expect(page.status == 0, "\(page.output.prefix(3000))")
        }
        // Longer than a retry interval (5 s): the retries fail too.
        let waited = Date().timeIntervalSince(readOnlySince)
        if waited < 6 { try await Task.sleep(for: .seconds(6 - waited)) }
        #expect(metric("rampart_state_writable") == 0)
        #expect(try RawClient(port: port).request("GET", "/")?.status == 200)

        // Writable again: everything that waited is written by the next retry.
        #expect(try runProgram(["umount", state]).0 == 0)
        #expect(eventually(timeout: 15) { metric("rampart_state_writable") == 1 && metric("rampart_state_pending_writes") == 0 }, "\(gw.stderrText.suffix(600))")
        #expect(gw.stderrText.contains("state database writable again"))
        gw.signal(SIGTERM)
        #expect(gw.waitForExit() == 0)
        let stored = try StateStore(folder: state, logger: Logger(label: "test")).activeBans(now: Int64(Date().timeIntervalSince1970))
        #expect(Set(stored.map(\.address)) == Set((1...50).map { "198.51.100.\($0)" }), "\(stored.count) of 50 bans stored")
    }
}
}

extension IntegrationTests.FaultTests {
    /// The database locked by another program for longer than the busy timeout (5 s) while the
    /// gateway starts: it starts and serves without it, and says so in the log and in /metrics.
    @Test func aDatabaseLockedAtStartIsReportedAndCostsNoRequest() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let dir = try IntegrationTests.TLSTests.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let state = dir.appendingPathComponent("state").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        _ = try StateStore(folder: state, logger: Logger(label: "test"))
        let holder = try IntegrationTests.StateStoreFaultTests.lock("\(state)/state.sqlite", seconds: 12)
        defer { holder.terminate() }
        let gw = try GatewayProcess(arguments: [
            "run", "--listen", "127.0.0.1:0", "--origin", "127.0.0.1:\(originPort)", "--admin", "127.0.0.1:0", "--state", state,
        ])
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        let admin = try gw.adminLink()
        #expect(gw.stderrText.contains("state database unavailable"), "\(gw.stderrText.suffix(600))")
        #expect(try RawClient(port: port).request("GET", "/")?.status == 200)
        let metrics = try RawClient(port: admin.port).request("GET", "/metrics", headers: ["Authorization: Bearer \(admin.token)"])?.text ?? ""
        let writable = metrics.split(separator: "\n").first { $0.hasPrefix("rampart_state_writable ") }.flatMap { Double($0.split(separator: " ")[1]) }
        #expect(writable == 0, "\(metrics.prefix(400))")
    }
}

/// A flag a test thread polls.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = true

    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return value
    }

    func clear() {
        lock.lock()
        value = false
        lock.unlock()
    }
}
