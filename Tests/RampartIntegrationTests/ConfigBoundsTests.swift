import Foundation
import Testing

/// Values that used to pass `rampart check` and then trap in the running gateway (an overflow at
/// the first automatic ban, a Double-to-Int conversion of a Retry-After, an overflowing body-rate
/// product) are refused by both `rampart check` and `rampart run`, naming file, line and key.
extension IntegrationTests {
@Suite(.serialized) struct ConfigBoundsTests {
    /// `(top-level snippet, site snippet, key, line)`.
    static let refused: [(String, String, String, Int)] = [
        ("bans: {duration: 9223372036s}", "", "bans.duration", 2),
        ("", "rate_limits: [{name: per-ip, rate: 1e-20/s}]", "sites[0].rate_limits[0].rate", 8),
        ("timeouts: {body_min_rate: 4GiB}", "", "timeouts.body_min_rate", 2),
    ]

    @Test func checkAndRunRefuseTheReviewsThreeConfigs() throws {
        for (top, site, key, line) in Self.refused {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-bounds-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let path = dir.appendingPathComponent("rampart.yaml").path
            try """
                listeners: [{address: 127.0.0.1:0}]
                \(top)
                sites:
                  - name: www
                    hosts: [example.org]
                    origins: [127.0.0.1:9]
                    health_check: { enabled: false }
                    \(site)
                """.write(toFile: path, atomically: true, encoding: .utf8)

            let (status, out) = try runProgram(["check", "--config", path], executable: Binary.rampart)
            #expect(status == 1, "check accepted \(key): \(out)")
            #expect(out.contains("\(path):\(line):") && out.contains(": \(key): must be between"), "\(out)")

            let run = try GatewayProcess(arguments: ["run", "--config", path, "--state", dir.appendingPathComponent("state").path, "--admin", "127.0.0.1:0"])
            defer { run.stop() }
            #expect(run.waitForExit(timeout: 20) == 2, "run started with \(key)")
            #expect(run.stderrText.contains("\(path):\(line):") && run.stderrText.contains(key), "\(run.stderrText)")
        }
    }

    /// A PROXY listener that believes headers from any peer passes `check` with a warning that
    /// names the key; the same listener with `proxy_protocol_from` passes without one.
    @Test func checkWarnsAboutAProxyListenerOpenToAnyPeer() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-warn-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func check(_ listener: String) throws -> (Int32, String, String) {
            let path = dir.appendingPathComponent("rampart-\(UUID().uuidString).yaml").path
            try """
                listeners: [\(listener)]
                sites:
                  - name: www
                    hosts: [example.org]
                    origins: [127.0.0.1:9]
                """.write(toFile: path, atomically: true, encoding: .utf8)
            let (status, out) = try runProgram(["check", "--config", path], executable: Binary.rampart)
            return (status, out, path)
        }
        let (open, openOut, openPath) = try check("{address: 127.0.0.1:0, proxy_protocol: true}")
        #expect(open == 0, "\(openOut)")
        #expect(openOut.contains("warning: \(openPath):1:") && openOut.contains("listeners[0].proxy_protocol"), "\(openOut)")
        #expect(openOut.contains("1 warning(s)"), "\(openOut)")
        let (closed, closedOut, _) = try check("{address: 127.0.0.1:0, proxy_protocol: true, proxy_protocol_from: [10.0.0.0/8]}")
        #expect(closed == 0 && !closedOut.contains("warning"), "\(closedOut)")
    }
}
}
