import Foundation
import RampartDemoOrigin
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Binary upgrade through the real binary: a second `rampart run --takeover` takes the listening
/// sockets over from the running one while requests flow, the first drains and exits, and bans
/// and incidents are carried over.
extension IntegrationTests {
@Suite(.serialized) struct UpgradeTests {
    /// Requests sent back to back from a few threads, on kept-alive connections and on a new
    /// connection each, counted. A request on a reused kept-alive connection that the server closed
    /// before answering is sent again once on a new connection, as HTTP clients do with idempotent
    /// requests (RFC 9112, 9.3.1); those are counted apart and are not failures. A refused
    /// connection, an error status or no answer on a new connection is a failure.
    final class Load: @unchecked Sendable {
        private let lock = NSLock()
        private var stopped = false
        private(set) var ok = 0
        private(set) var retried = 0
        private(set) var failures: [String] = []
        private var threads = 0

        func start(port: Int, keepAliveThreads: Int, freshThreads: Int, limit: TimeInterval) {
            let deadline = Date().addingTimeInterval(limit)
            for i in 0..<(keepAliveThreads + freshThreads) {
                let keepAlive = i < keepAliveThreads
                locked { threads += 1 }
                Thread.detachNewThread { [self] in
                    var client: RawClient?
                    var requests = 0
                    while !locked({ stopped }), Date() < deadline, requests < 200_000 {
                        requests += 1
                        let reused = client != nil
                        if client == nil { client = try? RawClient(port: port) }
                        guard let c = client else {
                            record(failure: "connection refused")
                            continue
                        }
                        var reply = c.request("GET", "/echo")
                        if reply == nil, reused {
                            locked { retried += 1 }
                            client = try? RawClient(port: port)
                            reply = client?.request("GET", "/echo")
                        }
                        if let reply, reply.status == 200 {
                            locked { ok += 1 }
                        } else {
                            let why = reply.map { "status \($0.status)" } ?? "no answer on a new connection (errno \(errno), \(keepAlive ? "kept-alive thread" : "fresh thread"), \(Date().timeIntervalSince1970))"
                            record(failure: why)
                            client = nil
                            continue
                        }
                        if !keepAlive || reply?.header("connection")?.lowercased() == "close" { client = nil }
                    }
                    locked { threads -= 1 }
                }
            }
        }

        private func locked<T>(_ body: () -> T) -> T {
            lock.lock()
            defer { lock.unlock() }
            return body()
        }

        private func record(failure: String) {
            locked { if failures.count < 20 { failures.append(failure) } else { failures[19] = "... \(failure)" } }
            locked { failedCount += 1 }
        }

        private(set) var failedCount = 0

        /// Stops the threads and waits for them (bounded).
        func stop() {
            locked { stopped = true }
            _ = eventually(timeout: 10) { locked { threads == 0 } }
        }
    }

    static func yaml(origin: Int) -> String {
        """
        listeners:
          - address: 127.0.0.1:0
            limits: { max_connections_per_ip: 100000 }
        timeouts: { drain: 5s }
        sites:
          - name: www
            hosts: [example.org]
            origins: [{address: 127.0.0.1:\(origin), max_connections: 256}]
            rate_limits: []
            detection: { enabled: false }
            cache: { enabled: false }
        """
    }

    /// A demo origin and the first gateway in front of it, listening.
    struct Running {
        let origin: DemoOrigin
        let originPort: Int
        let old: GatewayProcess
        let port: Int
        var state: URL { old.directory.appendingPathComponent("state") }

        static func start() async throws -> Running {
            let origin = DemoOrigin()
            let originPort = try await origin.start()
            let old = try GatewayProcess(yaml: UpgradeTests.yaml(origin: originPort))
            return Running(origin: origin, originPort: originPort, old: old, port: try old.waitUntilListening()[0])
        }

        /// A second process started to take the first one's sockets over, with `config`.
        func takeover(config: URL) throws -> GatewayProcess {
            try GatewayProcess(arguments: ["run", "--config", config.path, "--state", state.path, "--admin", "127.0.0.1:0", "--takeover"])
        }

        func stop() {
            old.stop()
            Task { await origin.stop() }
        }
    }

    @Test func aNewProcessTakesTheSocketsOverUnderLoadWithoutAFailedRequestAndKeepsBansAndIncidents() async throws {
        let running = try await Running.start()
        defer { running.stop() }
        let (old, port, state) = (running.old, running.port, running.state)
        let admin = try old.adminLink()

        // A ban and a closed incident in the first process.
        #expect(try IncidentReportTests.call(admin.port, admin.token, "POST", "/api/bans", #"{"address":"127.0.0.9","ttl":3600,"reason":"upgrade test"}"#) / 100 == 2)
        #expect(try IncidentReportTests.call(admin.port, admin.token, "PUT", "/api/sites/www/mode", #"{"mode":"under_attack"}"#) == 200)
        #expect(try IncidentReportTests.call(admin.port, admin.token, "PUT", "/api/sites/www/mode", #"{"mode":"auto"}"#) == 200)
        let incidentsBefore = try Self.incidentIDs(admin.port, admin.token)
        #expect(!incidentsBefore.isEmpty)

        let load = Load()
        load.start(port: port, keepAliveThreads: 3, freshThreads: 2, limit: 60)
        defer { load.stop() }
        usleep(1_000_000)
        let okBefore = load.ok

        let new = try running.takeover(config: old.configURL)
        defer { new.stop() }
        let newPorts = try? new.waitUntilListening()
        #expect(newPorts?.first == port, "the new process did not serve; its log:\n\(new.stderrText)\nthe old one's:\n\(old.stderrText)")
        #expect(old.waitForExit(timeout: 15) == 0, "the old process did not drain and exit: \(old.stderrText)")
        #expect(eventually(timeout: 10) { new.stderrText.contains("the previous process has exited") }, "\(new.stderrText)")
        usleep(1_000_000)
        load.stop()

        #expect(load.failedCount == 0, "failed requests: \(load.failures)\nold:\n\(old.stderrText.split(separator: "\n").filter { !$0.contains("duplicate") }.suffix(30).joined(separator: "\n"))\nnew:\n\(new.stderrText)")
        #expect(load.ok > okBefore + 100, "too little load went through the upgrade: \(load.ok)")
        print("upgrade under load: \(load.ok) requests answered 200, \(load.failedCount) failed, \(load.retried) resent after a kept-alive connection closed")
        #expect(new.process.isRunning)

        // Bans and incidents live on in the new process.
        let newAdmin = try new.adminPort()
        let token = try String(contentsOf: state.appendingPathComponent("admin.token"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(Set(try Self.incidentIDs(newAdmin, token)).isSuperset(of: incidentsBefore))
        let banned = try RawClient(port: port, source: "127.0.0.9")
        #expect(banned.request("GET", "/echo") == nil, "a banned source was served after the upgrade")
        #expect(try RawClient(port: port).request("GET", "/echo")?.status == 200)
    }

    @Test func aTakeoverWithOtherListenersIsRefusedAndTheRunningGatewayKeepsServing() async throws {
        let running = try await Running.start()
        defer { running.stop() }
        let (old, port) = (running.old, running.port)
        let other = old.directory.appendingPathComponent("other.yaml")
        try Self.yaml(origin: running.originPort).replacingOccurrences(of: "127.0.0.1:0\n", with: "127.0.0.1:0\n  - address: 127.0.0.1:0\n").write(to: other, atomically: true, encoding: .utf8)
        let new = try running.takeover(config: other)
        defer { new.stop() }
        #expect(new.waitForExit(timeout: 20) == 1)
        #expect(new.stderrText.contains("a takeover keeps the listeners as they are"), "\(new.stderrText)")
        #expect(old.process.isRunning)
        #expect(try RawClient(port: port).request("GET", "/echo")?.status == 200)
    }

    static func incidentIDs(_ admin: Int, _ token: String) throws -> [Int] {
        let reply = try RawClient(port: admin).request("GET", "/api/incidents", headers: ["Authorization: Bearer \(token)"])
        let list = (try? JSONSerialization.jsonObject(with: Data(reply?.body ?? []))) as? [[String: Any]] ?? []
        return list.compactMap { $0["id"] as? Int }
    }
}
}
