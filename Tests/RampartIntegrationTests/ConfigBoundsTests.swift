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
}
}
