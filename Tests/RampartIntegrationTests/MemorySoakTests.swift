import Foundation
import RampartDemoOrigin
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Memory stays flat however many client addresses the gateway sees: a one-site gateway with
/// every protection on its defaults gets one request from each of N distinct source addresses
/// (connections bound to 127.a.b.c, a fresh one each), its resident memory sampled as it goes.
///
/// CI runs the short version: 150,000 addresses as fast as the machine goes (under 2 minutes on a
/// debug build; `RAMPART_SOAK_ADDRESSES` sets another count). `bench/soak.sh` runs the long one
/// (10 million over 30 minutes, release build) through the same test with `RAMPART_SOAK_SECONDS`
/// and writes the curve to `RAMPART_SOAK_CSV`.
extension IntegrationTests {
@Suite(.serialized) struct MemorySoakTests {
    /// The source address of the n-th client: 127.1.0.0 upwards (127.0.0.0/16 stays free for the
    /// tests' own clients). 16 million addresses fit.
    static func address(_ n: Int) -> String {
        "127.\(1 + n / 65_536).\(n / 256 % 256).\(n % 256)"
    }

    /// Resident memory of a process, in MB (VmRSS).
    static func rssMB(_ pid: Int32) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kb = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) })
        else { return nil }
        return kb / 1024
    }

    /// Sends one request from each of `addresses` sources over `threads` threads, paced to
    /// `seconds` when given (else as fast as it goes), each connection closed with a reset (no
    /// TIME_WAIT piles up). Counts answers by status class.
    final class Sources: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var sent = 0
        private(set) var answered = 0
        private(set) var unanswered = 0

        func run(port: Int, addresses: Int, seconds: Double?, threads: Int, deadline: Date) {
            let started = Date()
            let group = DispatchGroup()
            for t in 0..<threads {
                group.enter()
                Thread.detachNewThread { [self] in
                    defer { group.leave() }
                    var n = t
                    while n < addresses, Date() < deadline {
                        if let seconds {
                            // Steady pace: the n-th address is due at n / rate seconds.
                            let due = started.addingTimeInterval(seconds * Double(n) / Double(addresses))
                            let wait = due.timeIntervalSinceNow
                            if wait > 0 { usleep(useconds_t(min(wait, 1) * 1_000_000)) }
                        }
                        let ok: Bool
                        if let client = try? RawClient(port: port, source: MemorySoakTests.address(n)) {
                            client.setTimeout(10)
                            ok = client.request("GET", "/?soak=\(n)", headers: ["User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Accept: text/html"]) != nil
                            var linger = linger(l_onoff: 1, l_linger: 0)
                            setsockopt(client.fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
                        } else {
                            ok = false
                        }
                        lock.lock()
                        sent += 1
                        if ok { answered += 1 } else { unanswered += 1 }
                        lock.unlock()
                        n += threads
                    }
                }
            }
            group.wait()
        }

        var progress: (sent: Int, answered: Int, unanswered: Int) {
            lock.lock()
            defer { lock.unlock() }
            return (sent, answered, unanswered)
        }
    }

    @Test func memoryStaysFlatAndUnder200MBWithManyDistinctClientAddresses() async throws {
        let env = ProcessInfo.processInfo.environment
        let addresses = env["RAMPART_SOAK_ADDRESSES"].flatMap(Int.init) ?? 150_000
        let seconds = env["RAMPART_SOAK_SECONDS"].flatMap(Double.init)
        let sampleEvery = env["RAMPART_SOAK_SAMPLE_SECONDS"].flatMap(Double.init) ?? 10
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let gw = try GatewayProcess(arguments: [
            "run", "--listen", "127.0.0.1:0", "--origin", "127.0.0.1:\(originPort)", "--admin", "127.0.0.1:0",
            "--state", FileManager.default.temporaryDirectory.appendingPathComponent("rampart-soak-\(UUID().uuidString)").path,
            "--log-level", "warning",
        ])
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        let pid = gw.process.processIdentifier

        let sources = Sources()
        let deadline = Date().addingTimeInterval((seconds ?? 600) * 1.5 + 60)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            sources.run(port: port, addresses: addresses, seconds: seconds, threads: 6, deadline: deadline)
            done.signal()
        }
        // Samples: (seconds since start, addresses sent, RSS MB).
        var samples: [(Double, Int, Double)] = []
        let start = Date()
        var csv = "seconds,addresses,rss_mb\n"
        while done.wait(timeout: .now() + sampleEvery) == .timedOut {
            guard let rss = Self.rssMB(pid) else { break }
            let sample = (Date().timeIntervalSince(start), sources.progress.sent, rss)
            samples.append(sample)
            csv += String(format: "%.0f,%d,%.1f\n", sample.0, sample.1, sample.2)
        }
        if let rss = Self.rssMB(pid) {
            samples.append((Date().timeIntervalSince(start), sources.progress.sent, rss))
            csv += String(format: "%.0f,%d,%.1f\n", samples.last!.0, samples.last!.1, rss)
        }
        if let path = env["RAMPART_SOAK_CSV"] { try csv.write(toFile: path, atomically: true, encoding: .utf8) }
        let progress = sources.progress
        print("soak: \(progress.sent) addresses in \(Int(Date().timeIntervalSince(start))) s, \(progress.answered) answered, \(progress.unanswered) unanswered\n\(csv)")

        #expect(progress.sent == addresses, "only \(progress.sent) of \(addresses) addresses sent before the deadline")
        #expect(Double(progress.answered) >= Double(progress.sent) * 0.99, "\(progress.unanswered) of \(progress.sent) got no answer")
        #expect(gw.process.isRunning)
        // After the first part (the first minute, or the first tenth of the addresses when run as
        // fast as it goes) the curve is flat: at most 10% above where it stood then.
        let firstPart = samples.firstIndex { seconds == nil ? $0.1 >= addresses / 10 : $0.0 >= 60 } ?? 0
        let reference = samples.isEmpty ? 0 : samples[firstPart].2
        let peak = samples.map(\.2).max() ?? 0
        #expect(!samples.isEmpty)
        #expect(peak <= reference * 1.10, "RSS grew from \(reference) MB to \(peak) MB after the first part")
        #expect(peak <= 200, "peak RSS \(peak) MB")
    }
}
}
