import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The smuggling and normalisation corpus (`Tests/smuggling/`) through the real binary: raw
/// HTTP/1.1 and HTTP/2-over-TLS requests, each judged by what a strict recording origin parsed
/// (exactly the one request the gateway decided on, or nothing when it refused), in one-site mode
/// and with a two-site config. Needs python3 with the `h2` package.
extension IntegrationTests {
@Suite(.serialized) struct SmugglingCorpusTests {
    /// The corpus, its runner and the recording origin.
    static var folder: URL { BrowserTests.repo.appendingPathComponent("Tests/smuggling") }

    /// A recording origin: its origin port and its control address.
    struct RecordingOrigin {
        let tool: ToolProcess
        let port: Int
        let control: String

        init(name: String) throws {
            tool = try ToolProcess("../smuggling/recording_origin.py", ["--name", name])
            port = try tool.port()
            let tool = self.tool
            guard eventually({ tool.output.all.contains { $0.hasPrefix("CONTROL ") } }),
                let control = tool.output.all.first(where: { $0.hasPrefix("CONTROL ") }).flatMap({ Int($0.dropFirst(8)) })
            else { throw TestFailure("recording origin printed no control port: \(tool.output.text)") }
            self.control = "127.0.0.1:\(control)"
        }
    }

    /// One-site mode (a plain and a TLS gateway on one origin) and a two-site config (x.test and
    /// y.test, an origin each), the two corpus runs side by side; every case must pass, and the
    /// failure names each case that did not with what the client and the origin saw.
    @Test func theOriginParsesExactlyTheRequestTheGatewayDecidedOn() throws {
        let (status, output) = try runProgram(["python3", "-c", "import h2"])
        #expect(status == 0, "the corpus needs python3 with the h2 package (pip install h2): \(output)")
        guard status == 0 else { return }

        let dir = try TLSTests.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (cert, key) = try TLSTests.certificate("x.test", in: dir)

        // One-site mode: a plain and a TLS gateway in front of one origin.
        let single = try RecordingOrigin(name: "origin")
        defer { single.tool.stop() }
        let plain = try GatewayProcess(arguments: [
            "run", "--listen", "127.0.0.1:0", "--origin", "127.0.0.1:\(single.port)",
            "--admin", "127.0.0.1:0", "--state", dir.appendingPathComponent("state-plain").path,
        ])
        defer { plain.stop() }
        let tls = try GatewayProcess(arguments: [
            "run", "--listen", "127.0.0.1:0", "--origin", "127.0.0.1:\(single.port)", "--tls-cert", cert, "--tls-key", key,
            "--admin", "127.0.0.1:0", "--state", dir.appendingPathComponent("state-tls").path,
        ])
        defer { tls.stop() }

        // Two sites, x.test and y.test, each with its own origin; a plain and a TLS listener.
        let x = try RecordingOrigin(name: "x.test")
        defer { x.tool.stop() }
        let y = try RecordingOrigin(name: "y.test")
        defer { y.tool.stop() }
        let twoSites = try GatewayProcess(yaml: """
            listeners:
              - address: 127.0.0.1:0
              - address: 127.0.0.1:0
                tls: { cert: \(cert), key: \(key) }
            sites:
              - name: x
                hosts: [x.test]
                origins: [127.0.0.1:\(x.port)]
              - name: y
                hosts: [y.test]
                origins: [127.0.0.1:\(y.port)]
            """)
        defer { twoSites.stop() }

        let plainPort = try plain.waitUntilListening()[0]
        let tlsPort = try tls.waitUntilListening()[0]
        let twoPorts = try twoSites.waitUntilListening(count: 2)

        let runner = Self.folder.appendingPathComponent("run_corpus.py").path
        let results = try Self.concurrently([
            ["python3", runner, "--json", "--label", "one-site", "--gateway", "127.0.0.1:\(plainPort)", "--tls-port", "\(tlsPort)",
             "--origin-control", single.control],
            ["python3", runner, "--json", "--label", "two-site", "--gateway", "127.0.0.1:\(twoPorts[0])", "--tls-port", "\(twoPorts[1])",
             "--site", "x.test=\(x.control)", "--site", "y.test=\(y.control)"],
        ])
        for (label, (exitStatus, text)) in zip(["one-site", "two-site"], results) {
            guard let doc = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                let cases = doc["cases"] as? [[String: Any]]
            else {
                Issue.record("\(label): the corpus runner printed no JSON (exit \(exitStatus)):\n\(text)")
                continue
            }
            let failing = cases.filter { ($0["pass"] as? Bool) != true }.map { c in
                let problems = (c["problems"] as? [String] ?? []).joined(separator: "; ")
                return "\(c["id"] ?? "?") [\(c["proto"] ?? "?"), expected \(c["expect"] ?? "?")]: \(c["outcome"] ?? "?") — \(problems)"
            }
            let failed = failing.count
            #expect(failed == 0, "\(label): \(failed) of \(cases.count) corpus cases failed:\n\(failing.joined(separator: "\n"))")
            #expect((doc["skipped"] as? [Any])?.isEmpty ?? false, "\(label): skipped \(doc["skipped"] ?? "?")")
            // The corpus ran (HTTP/1.1 and HTTP/2 cases both), and its exit status agrees.
            #expect(cases.count >= (label == "one-site" ? 60 : 6), "\(label): only \(cases.count) cases ran")
            #expect(cases.contains { $0["proto"] as? String == "h2" }, "\(label): no HTTP/2 case ran")
            #expect((exitStatus == 0) == failing.isEmpty, "\(label): runner exit \(exitStatus)")
        }
        // No gateway crashed on the way.
        for gw in [plain, tls, twoSites] { #expect(gw.process.isRunning, "\(gw.stderrText)") }
    }

    /// Runs the programs side by side (each to its end); returns each one's exit status and
    /// standard output (its standard error goes to the test's log).
    static func concurrently(_ commands: [[String]]) throws -> [(Int32, String)] {
        let processes = try commands.map { arguments -> (Process, Pipe) in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = arguments
            let out = Pipe()
            p.standardOutput = out
            p.standardInput = FileHandle.nullDevice
            try p.run()
            return (p, out)
        }
        let collected = LockedOutputs(count: processes.count)
        let group = DispatchGroup()
        for (i, (_, pipe)) in processes.enumerated() {
            let handle = pipe.fileHandleForReading
            group.enter()
            DispatchQueue.global().async {
                collected.set(i, handle.readDataToEndOfFile())
                group.leave()
            }
        }
        // Bounded: the runner's own timeouts end it well before this.
        if group.wait(timeout: .now() + 240) == .timedOut {
            for (p, _) in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) }
            throw TestFailure("the corpus runner did not finish in 240 s")
        }
        return processes.enumerated().map { i, entry in
            entry.0.waitUntilExit()
            return (entry.0.terminationStatus, String(decoding: collected.get(i), as: UTF8.self))
        }
    }
}
}

/// Outputs of programs run side by side, filled from several threads.
private final class LockedOutputs: @unchecked Sendable {
    private let lock = NSLock()
    private var outputs: [Data]

    init(count: Int) { outputs = Array(repeating: Data(), count: count) }

    func set(_ index: Int, _ data: Data) {
        lock.lock()
        outputs[index] = data
        lock.unlock()
    }

    func get(_ index: Int) -> Data {
        lock.lock()
        defer { lock.unlock() }
        return outputs[index]
    }
}
