import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A `rampart run --config` on a state folder the test owns and keeps across starts (a
/// `GatewayProcess` deletes its folder when it stops), with a chosen environment and its standard
/// output and error captured. Standard output is a pipe, not a terminal, as under a service manager.
final class StatefulGateway: @unchecked Sendable {
    let process = Process()
    /// Everything it printed on standard output.
    let stdout = LineCollector()
    /// Everything it logged on standard error.
    let stderr = LineCollector()

    /// Starts the gateway. `RAMPART_ADMIN_TOKEN` is removed from the inherited environment unless
    /// `environment` sets it.
    init(config: URL, state: URL, environment: [String: String] = [:], extraArguments: [String] = []) throws {
        process.executableURL = URL(fileURLWithPath: Binary.rampart)
        process.arguments = ["run", "--config", config.path, "--state", state.path, "--admin", "127.0.0.1:0"] + extraArguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "RAMPART_ADMIN_TOKEN")
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let stdout = self.stdout
        let stderr = self.stderr
        out.fileHandleForReading.readabilityHandler = { stdout.append($0.availableData) }
        err.fileHandleForReading.readabilityHandler = { stderr.append($0.availableData) }
        try process.run()
    }

    /// The `Rampart dashboard: ...` line, once printed.
    func dashboardLine() throws -> String {
        var line: String?
        _ = eventually(timeout: 20) {
            line = stdout.all.first { $0.hasPrefix("Rampart dashboard: ") }
            return line != nil || !process.isRunning
        }
        guard let line else { throw TestFailure("no dashboard line; stdout:\n\(stdout.text)\nstderr:\n\(stderr.text)") }
        return line
    }

    /// The admin port named in the dashboard line.
    func adminPort() throws -> Int {
        let line = try dashboardLine()
        guard let start = line.range(of: "http://"),
            let port = line[start.upperBound...].prefix(while: { $0 != "/" }).split(separator: ":").last.flatMap({ Int($0) })
        else { throw TestFailure("no port in '\(line)'") }
        return port
    }

    /// The first listener's port, once printed.
    func listenerPort() throws -> Int {
        var port: Int?
        _ = eventually(timeout: 20) {
            port = stdout.all.first { $0.hasPrefix("Rampart listening on http://") }
                .flatMap { $0.dropLast().split(separator: ":").last.flatMap { Int($0) } }
            return port != nil || !process.isRunning
        }
        guard let port else { throw TestFailure("gateway did not start; stderr:\n\(stderr.text)") }
        return port
    }

    /// SIGTERM, then waits for the drain and exit (SIGKILL if it does not end).
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        if !eventually(timeout: 20, { !process.isRunning }) { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// A temporary folder for one test: a config file and a state folder, removed at the end.
struct TestFolder {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-admin-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    var config: URL { url.appendingPathComponent("rampart.yaml") }
    var state: URL { url.appendingPathComponent("state") }

    /// Writes the config file.
    func write(config yaml: String) throws { try yaml.write(to: config, atomically: true, encoding: .utf8) }

    /// A file in the state folder.
    func stateFile(_ name: String) -> String { state.appendingPathComponent(name).path }

    /// The permission bits of a file (`0o600`...).
    func mode(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions]) as? NSNumber)?.intValue ?? -1
    }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// The dashboard link printed at start: the token only when a person is the likely reader (a
/// terminal) or nobody has the token yet (made on this start); never in a log line.
extension IntegrationTests {
@Suite(.serialized) struct DashboardLinkTests {
    /// One site; the origin is never contacted (no health checks, no requests to the site).
    static let yaml = AdminTests.siteYAML.replacingOccurrences(of: "ORIGIN", with: "9")

    @Test func theFirstStartPrintsTheNewTokenAndLaterStartsSayWhereItIs() throws {
        let folder = try TestFolder()
        defer { folder.remove() }
        try folder.write(config: Self.yaml)

        // First start: the token is made now, so the link carries it (and it is the file's).
        let first = try StatefulGateway(config: folder.config, state: folder.state)
        let line = try first.dashboardLine()
        let firstAdmin = try first.adminPort()
        let saved = try String(contentsOfFile: folder.stateFile("admin.token"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(saved.count == 64)
        #expect(line == "Rampart dashboard: http://127.0.0.1:\(firstAdmin)/?token=\(saved)")
        // The secrets and their folder are their owner's only.
        #expect(folder.mode(folder.stateFile("admin.token")) == 0o600)
        #expect(folder.mode(folder.stateFile("signing.key")) == 0o600)
        #expect(folder.mode(folder.state.path) == 0o700)
        first.stop()

        // Second start, standard output still a pipe (a log): no token, but where it is.
        let second = try StatefulGateway(config: folder.config, state: folder.state, extraArguments: ["--log-level", "trace"])
        defer { second.stop() }
        let again = try second.dashboardLine()
        let admin = try second.adminPort()
        #expect(again == "Rampart dashboard: http://127.0.0.1:\(admin)/ (sign in with the admin token from \(folder.stateFile("admin.token")))")
        // The saved token still opens the dashboard and the API.
        let link = try #require(try RawClient(port: admin).request("GET", "/?token=\(saved)", host: "127.0.0.1:\(admin)"))
        #expect(link.status == 303)
        #expect(try RawClient(port: admin).request("GET", "/api/health", headers: ["Authorization: Bearer \(saved)"])?.status == 200)
        #expect(try RawClient(port: admin).request("GET", "/api/sites?token=\(saved)")?.status == 401)
        #expect(try RawClient(port: admin).request("GET", "/?token=not-\(saved)")?.status == 401)
        // Nothing printed or logged on this start, even at trace level and after calls that
        // carried the token, contains it.
        second.stop()
        #expect(!second.stdout.text.contains(saved))
        #expect(!second.stderr.text.contains(saved))
    }

    @Test func aTokenFromTheConfigOrTheEnvironmentIsNeverPrinted() throws {
        let configured = "configured-admin-token-0123456789"
        let folder = try TestFolder()
        defer { folder.remove() }
        try folder.write(config: Self.yaml.replacingOccurrences(of: "sites:", with: "admin: { token: \(configured) }\nsites:"))
        let fromConfig = try StatefulGateway(config: folder.config, state: folder.state)
        let line = try fromConfig.dashboardLine()
        let admin = try fromConfig.adminPort()
        #expect(line == "Rampart dashboard: http://127.0.0.1:\(admin)/ (sign in with the admin token from the config file (admin.token or admin.token_file))")
        #expect(try RawClient(port: admin).request("GET", "/api/health", headers: ["Authorization: Bearer \(configured)"])?.status == 200)
        fromConfig.stop()
        #expect(!fromConfig.stdout.text.contains(configured) && !fromConfig.stderr.text.contains(configured))
        // No admin.token is made when the config gives the token.
        #expect(!FileManager.default.fileExists(atPath: folder.stateFile("admin.token")))

        let fromEnvironment = "environment-admin-token-0123456789"
        let withEnvironment = try StatefulGateway(config: folder.config, state: folder.state, environment: ["RAMPART_ADMIN_TOKEN": fromEnvironment])
        let envLine = try withEnvironment.dashboardLine()
        let envAdmin = try withEnvironment.adminPort()
        #expect(envLine == "Rampart dashboard: http://127.0.0.1:\(envAdmin)/ (sign in with the admin token from the RAMPART_ADMIN_TOKEN environment variable)")
        #expect(try RawClient(port: envAdmin).request("GET", "/api/health", headers: ["Authorization: Bearer \(fromEnvironment)"])?.status == 200)
        withEnvironment.stop()
        #expect(!withEnvironment.stdout.text.contains(fromEnvironment) && !withEnvironment.stderr.text.contains(fromEnvironment))
    }

    /// Runs the gateway on a pseudo-terminal (as an operator at a shell does), prints the
    /// dashboard line it wrote there, then kills it.
    static let onTerminal = #"""
        import os, pty, select, signal, sys, time
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(sys.argv[1], sys.argv[1:])
        seen, deadline = b"", time.time() + 30
        while time.time() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
                lines = [l for l in seen.split(b"\n") if l.startswith(b"Rampart dashboard: ")]
                if lines and seen.endswith(b"\n"):
                    print(lines[0].decode().strip())
                    break
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        """#

    @Test func onATerminalTheLinkCarriesTheToken() throws {
        let configured = "configured-admin-token-terminal-42"
        let folder = try TestFolder()
        defer { folder.remove() }
        try folder.write(config: Self.yaml.replacingOccurrences(of: "sites:", with: "admin: { token: \(configured) }\nsites:"))
        let (status, out) = try runProgram([
            "python3", "-c", Self.onTerminal, Binary.rampart, "run", "--config", folder.config.path, "--state", folder.state.path,
            "--admin", "127.0.0.1:0",
        ])
        #expect(status == 0, "\(out)")
        let line = try #require(out.split(separator: "\n").first { $0.hasPrefix("Rampart dashboard: ") }, "\(out)")
        #expect(line.hasPrefix("Rampart dashboard: http://127.0.0.1:") && line.hasSuffix("/?token=\(configured)"), "\(line)")
    }
}
}
