import Foundation
import Logging
import RampartDemoOrigin
import RampartState
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The process itself: the systemd unit in `examples/`, the switch to an unprivileged user after
/// binding, the modes of the state files, and a taken admin port.
extension IntegrationTests {
@Suite(.serialized) struct ProcessHardeningTests {
    static let unit = BrowserTests.repo.appendingPathComponent("examples/rampart.service")

    /// `systemd-analyze verify` (Debian's systemd package) accepts the example unit with no
    /// warning, run against the built binary, and the unit keeps the hardening it promises.
    @Test func theExampleSystemdUnitVerifiesAndIsHardened() throws {
        let text = try String(contentsOf: Self.unit, encoding: .utf8)
        let settings = Dictionary(
            text.split(separator: "\n").filter { !$0.hasPrefix("#") && $0.contains("=") }.map { line -> (String, String) in
                let parts = line.split(separator: "=", maxSplits: 1)
                return (String(parts[0]), String(parts[1]))
            },
            uniquingKeysWith: { $0 + " " + $1 })
        #expect(settings["User"] == "rampart")
        #expect(settings["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE")
        #expect(settings["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE")
        #expect(settings["NoNewPrivileges"] == "yes")
        #expect(settings["ProtectSystem"] == "strict")
        #expect(settings["ReadWritePaths"] == "/var/lib/rampart")
        #expect(settings["PrivateTmp"] == "yes")
        #expect(settings["Restart"] == "on-failure")
        #expect(settings["MemoryMax"] != nil)
        #expect(settings["UMask"] == "0077")
        #expect(Int(settings["LimitNOFILE"] ?? "") ?? 0 >= 2 * 20_000, "two descriptors per connection of the example config")
        #expect(settings["ExecStart"]?.contains("--state /var/lib/rampart") == true)

        // The unit as installed points at /usr/local/bin/rampart; verify it against this build.
        let dir = try TLSTests.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let copy = dir.appendingPathComponent("rampart.service")
        try text.replacingOccurrences(of: "/usr/local/bin/rampart", with: Binary.rampart).write(to: copy, atomically: true, encoding: .utf8)
        let (status, output) = try runProgram(["systemd-analyze", "verify", copy.path])
        #expect(status == 0, "\(output)")
        #expect(output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "systemd-analyze warned:\n\(output)")
    }

    /// Started as root with `--user nobody`, the gateway binds a privileged port, then runs as
    /// nobody: it serves, takes a ban through the admin API and writes it to a state folder whose
    /// files are its own, 0700/0600.
    @Test func rootDropsToTheGivenUserAfterBindingAndKeepsWritingState() async throws {
        guard geteuid() == 0, let nobody = getpwnam("nobody") else {
            print("skipped: switching users needs root and a 'nobody' account (CI runs as root)")
            return
        }
        let (uid, gid) = (nobody.pointee.pw_uid, nobody.pointee.pw_gid)
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let dir = try TLSTests.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let state = dir.appendingPathComponent("state").path
        // Port 443 on an address of its own in 127.0.0.0/8: privileged, and free.
        let host = "127.\(Int.random(in: 64...250)).\(Int.random(in: 1...250)).\(Int.random(in: 1...250))"
        let gw = try GatewayProcess(arguments: [
            "run", "--listen", "\(host):443", "--origin", "127.0.0.1:\(originPort)", "--admin", "127.0.0.1:0",
            "--state", state, "--user", "nobody",
        ])
        defer { gw.stop() }
        try gw.waitUntilListening()
        let admin = try gw.adminLink()
        #expect(eventually { gw.stderrText.contains("running as an unprivileged user") }, "\(gw.stderrText)")
        let status = try String(contentsOfFile: "/proc/\(gw.process.processIdentifier)/status", encoding: .utf8)
        let ids = status.split(separator: "\n").filter { $0.hasPrefix("Uid:") || $0.hasPrefix("Gid:") }
            .map { $0.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().map { UInt32($0) ?? 0 } }
        #expect(ids.count == 2 && ids[0] == [uid, uid, uid, uid] && ids[1] == [gid, gid, gid, gid], "\(ids)")
        #expect(status.contains("CapEff:\t0000000000000000"), "capabilities left:\n\(status)")

        #expect(try RawClient(port: 443, host: host).request("GET", "/echo")?.status == 200)
        #expect(try IncidentReportTests.call(admin.port, admin.token, "POST", "/api/bans", #"{"address":"198.51.100.77","ttl":3600,"reason":"manual"}"#) / 100 == 2)
        gw.signal(SIGTERM)
        #expect(gw.waitForExit() == 0)

        func mode(_ path: String) -> (Int, UInt32) {
            var st = stat()
            return lstat(path, &st) == 0 ? (Int(st.st_mode & 0o777), st.st_uid) : (-1, 0)
        }
        let folder = mode(state)
        #expect(folder.0 == 0o700 && folder.1 == uid, "\(folder)")
        for file in ["state.sqlite", "signing.key", "admin.token"] {
            let (bits, owner) = mode("\(state)/\(file)")
            #expect(bits == 0o600 && owner == uid, "\(file): \(String(bits, radix: 8)) owned by \(owner)")
        }
        let store = try StateStore(folder: state, logger: Logger(label: "test"))
        #expect(try store.activeBans(now: Int64(Date().timeIntervalSince1970)).contains { $0.address == "198.51.100.77" })
    }

    @Test func anUnknownUserIsRefusedBeforeAnythingStarts() throws {
        let gw = try GatewayProcess(arguments: ["run", "--listen", "127.0.0.1:0", "--origin", "127.0.0.1:9", "--user", "no-such-user-rampart"])
        defer { gw.stop() }
        #expect(gw.waitForExit() == 2)
        #expect(gw.stderrText.contains("--user no-such-user-rampart: no such user"), "\(gw.stderrText)")
    }

    /// An admin port held by another process: a clear error naming the address, exit status 1,
    /// and the gateway's own listener closed again.
    @Test func aTakenAdminPortIsAClearErrorAndAnExitStatus() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(holder, $0, length) == 0 && listen(holder, 1) == 0 && getsockname(holder, $0, &length) == 0 }
        }
        try #require(bound)
        let taken = Int(UInt16(bigEndian: address.sin_port))
        let dir = try TLSTests.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let gw = try GatewayProcess(arguments: [
            "run", "--listen", "127.0.0.1:0", "--origin", "127.0.0.1:\(originPort)", "--admin", "127.0.0.1:\(taken)",
            "--state", dir.appendingPathComponent("state").path,
        ])
        defer { gw.stop() }
        #expect(gw.waitForExit() == 1)
        #expect(gw.stderrText.contains("cannot listen on the admin address") && gw.stderrText.contains("127.0.0.1:\(taken)"), "\(gw.stderrText)")
    }
}
}
