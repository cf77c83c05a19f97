import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway PostgreSQL cluster for the fleet tests: `initdb` in a temporary folder, the server
/// on 127.0.0.1 on a free port (and a Unix socket in the same folder only), trust authentication,
/// stopped by its PID and removed afterwards. PostgreSQL refuses to run as root: as root (CI) the
/// folder is given to `nobody` and every program runs through `runuser -u nobody`.
final class PostgresCluster: @unchecked Sendable {
    let directory: URL
    private(set) var port: Int
    private let bin: String
    private(set) var pid: pid_t = 0

    /// The newest server binaries found (Debian's /usr/lib/postgresql/N/bin), nil without any.
    static let binaries: String? = {
        let base = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).compactMap(Int.init).sorted()
        for v in versions.reversed() where FileManager.default.isExecutableFile(atPath: "\(base)/\(v)/bin/initdb") {
            return "\(base)/\(v)/bin"
        }
        return nil
    }()

    /// True when the fleet tests must run (CI sets RAMPART_REQUIRE_POSTGRES=1) or can.
    static var shouldRun: Bool {
        binaries != nil || ProcessInfo.processInfo.environment["RAMPART_REQUIRE_POSTGRES"] == "1"
    }

    /// Creates and starts a cluster.
    init() throws {
        guard let bin = Self.binaries else {
            throw TestFailure("PostgreSQL server binaries are missing (Debian: apt-get install postgresql)")
        }
        self.bin = bin
        directory = URL(fileURLWithPath: "/tmp").appendingPathComponent("rampart-pg-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if geteuid() == 0 {
            guard chown(directory.path, 65534, 65534) == 0 else { throw TestFailure("cannot give \(directory.path) to nobody") }
        }
        port = try Self.freePort()
        let (status, output) = try runAsOwner(["\(bin)/initdb", "-D", dataPath, "-U", "rampart", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"])
        guard status == 0 else { throw TestFailure("initdb failed (\(status)):\n\(output)") }
        // The free port may be taken between finding it and the server binding it (other tests,
        // other clusters): the first start tries a few ports. Restarts keep the port the nodes know.
        var attempt = 1
        while true {
            do {
                try start()
                break
            } catch where attempt < 4 && log.contains("Address already in use") {
                attempt += 1
                port = try Self.freePort()
            }
        }
    }

    var dataPath: String { directory.appendingPathComponent("data").path }

    /// The URL a node joins with (database `postgres`, user `rampart`, plain TCP on loopback).
    func url(node: String) -> String { "postgres://rampart@127.0.0.1:\(port)/postgres?sslmode=disable&node=\(node)" }

    /// Starts the server (again, after ``stop(immediate:)``) and waits until it takes connections.
    func start() throws {
        let options = "-p \(port) -k \(directory.path) -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
        let (status, output) = try runAsOwner(["\(bin)/pg_ctl", "-D", dataPath, "-l", directory.appendingPathComponent("server.log").path, "-o", options, "-w", "-t", "30", "start"])
        guard status == 0 else { throw TestFailure("pg_ctl start failed (\(status)):\n\(output)\n\(log)") }
        let pidFile = (try? String(contentsOfFile: "\(dataPath)/postmaster.pid", encoding: .utf8)) ?? ""
        guard let first = pidFile.split(separator: "\n").first, let p = pid_t(first) else { throw TestFailure("no postmaster.pid") }
        pid = p
    }

    /// Stops the server by its PID: `immediate` (SIGQUIT, as `pg_ctl stop -m immediate`: connections
    /// cut, no checkpoint) or fast (SIGINT). Waits until it is gone (at most 20 s).
    func stop(immediate: Bool) {
        guard pid > 0 else { return }
        kill(pid, immediate ? SIGQUIT : SIGINT)
        let deadline = Date().addingTimeInterval(20)
        while kill(pid, 0) == 0, Date() < deadline { usleep(20_000) }
        if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
        pid = 0
    }

    /// The server's log (for failure messages).
    var log: String { (try? String(contentsOf: directory.appendingPathComponent("server.log"), encoding: .utf8)) ?? "" }

    /// Runs an SQL statement with psql; returns its unaligned output.
    func sql(_ statement: String) throws -> String {
        let (status, output) = try runAsOwner(["\(bin)/psql", "-h", "127.0.0.1", "-p", "\(port)", "-U", "rampart", "-d", "postgres", "-At", "-c", statement])
        guard status == 0 else { throw TestFailure("psql failed: \(output)") }
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs a program (as nobody when root) to its end. Spawned directly with every descriptor
    /// above 2 closed and its output in a file: the server `pg_ctl` leaves running would otherwise
    /// inherit the pipes (and Foundation's exit watch) of the test process and hold them for its
    /// whole life.
    private func runAsOwner(_ arguments: [String]) throws -> (Int32, String) {
        let argv = geteuid() == 0 ? ["/usr/sbin/runuser", "-u", "nobody", "--"] + arguments : arguments
        let outputPath = directory.appendingPathComponent("command-\(UUID().uuidString.prefix(8)).out").path
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o666)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // glibc 2.34+ has closefrom for spawn; Swift's Glibc module does not export it.
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np") else {
            throw TestFailure("posix_spawn_file_actions_addclosefrom_np is missing (glibc 2.34 or later)")
        }
        _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
        var cArguments = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, &cArguments, environ)
        guard spawned == 0 else { throw TestFailure("cannot start \(argv[0]): \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exit, (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
    }

    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw TestFailure("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    deinit {
        stop(immediate: true)
        try? FileManager.default.removeItem(at: directory)
    }
}
