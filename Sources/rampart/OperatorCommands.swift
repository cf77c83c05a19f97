import ArgumentParser
import Foundation
import RampartCore

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// How the operator commands reach a running gateway: its admin address and token.
struct AdminOptions: ParsableArguments {
    @Option(name: .long, help: "Admin listener of the running gateway.")
    var admin: String = "127.0.0.1:9090"

    @Option(name: .long, help: "Admin token (default: RAMPART_ADMIN_TOKEN, else STATE/admin.token).")
    var token: String?

    @Option(name: .long, help: "State folder of the gateway (to read a generated admin.token).")
    var state: String = "rampart-state"

    func resolvedToken() throws -> String {
        if let token { return token }
        if let env = ProcessInfo.processInfo.environment["RAMPART_ADMIN_TOKEN"], !env.isEmpty { return env }
        let path = (state as NSString).appendingPathComponent("admin.token")
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("no admin token: give --token, set RAMPART_ADMIN_TOKEN, or point --state at the gateway's state folder")
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Calls the admin API; returns the status and body. Errors name the address.
    func call(_ method: String, _ path: String, body: [String: Any]? = nil) async throws -> (Int, Data) {
        guard let url = URL(string: "http://\(admin)\(path)") else { throw ValidationError("--admin: expected host:port") }
        var request = URLRequest(url: url, timeoutInterval: 10)
        request.httpMethod = method
        request.setValue("Bearer \(try resolvedToken())", forHTTPHeaderField: "Authorization")
        if let body {
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        do {
            let (data, response) = try await URLSession.shared.data(for: request)
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            if status == 401 { throw ValidationError("the gateway at \(admin) refused the admin token") }
            return (status, data)
        } catch let e as ValidationError {
            throw e
        } catch {
            throw ValidationError("cannot reach the gateway's admin listener at \(admin): \(error.localizedDescription)")
        }
    }

    func json(_ method: String, _ path: String, body: [String: Any]? = nil) async throws -> Any {
        let (status, data) = try await call(method, path, body: body)
        let value = (try? JSONSerialization.jsonObject(with: data)) ?? [:]
        if status >= 400 {
            let message = (value as? [String: Any])?["error"] as? String ?? "HTTP \(status)"
            throw ValidationError(message)
        }
        return value
    }
}

struct Top: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Live view of a running gateway: per-site rates, modes and top sources.")

    @OptionGroup var options: AdminOptions
    @Option(name: .long, help: "Refreshes before exiting (0: until interrupted).") var count: Int = 0
    @Option(name: .long, help: "Seconds between refreshes.") var interval: Double = 1

    func run() async throws {
        var n = 0
        while count == 0 || n < count {
            let frame = try await options.json("GET", "/api/stats") as? [String: Any] ?? [:]
            var lines: [String] = []
            lines.append("Rampart at \(options.admin) · \(frame["bans"] as? Int ?? 0) bans in force · \(Date())")
            lines.append("")
            lines.append("SITE            MODE          REQ/S  ORIGIN  CACHED  CHALL.  LIMITED  SOURCES  LAT ms")
            for s in frame["sites"] as? [[String: Any]] ?? [] {
                func i(_ k: String) -> String { String(s[k] as? Int ?? 0) }
                let mode = (s["mode"] as? String ?? "") + ((s["override"] as? String) != nil ? "*" : "")
                lines.append(
                    [pad(s["site"] as? String ?? "", 15), pad(mode, 13), lpad(i("requests"), 6), lpad(i("to_origin"), 7), lpad(i("cache_served"), 7),
                     lpad(i("challenged"), 7), lpad(i("limited"), 8), lpad(i("distinct_sources"), 8), lpad(String(s["origin_latency_ms"] as? Double ?? 0), 7)]
                        .joined(separator: " ")
                )
            }
            for t in frame["top"] as? [[String: Any]] ?? [] {
                lines.append("")
                lines.append("top sources of \(t["site"] as? String ?? ""):")
                for e in (t["sources"] as? [[String: Any]] ?? []).prefix(10) {
                    lines.append("  \(pad(e["key"] as? String ?? "", 40)) \(e["count"] as? Int ?? 0)/s")
                }
                let stacks = (t["fingerprints"] as? [[String: Any]] ?? []).prefix(5)
                if !stacks.isEmpty {
                    lines.append("top TLS fingerprints (JA4):")
                    for e in stacks { lines.append("  \(pad(e["key"] as? String ?? "", 40)) \(e["count"] as? Int ?? 0)/s") }
                }
            }
            // Clear the screen and home the cursor between refreshes on a terminal.
            if isatty(1) != 0 { print("\u{1B}[2J\u{1B}[H", terminator: "") }
            print(lines.joined(separator: "\n"))
            n += 1
            if count != 0, n >= count { break }
            try await Task.sleep(nanoseconds: UInt64(max(0.2, interval) * 1e9))
        }
    }
}

struct Ban: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ban, list and lift bans on a running gateway.",
        subcommands: [Add.self, List.self, Remove.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Ban an address (refused at accept).")
        @OptionGroup var options: AdminOptions
        @Argument(help: "IPv4 or IPv6 address.") var address: String
        @Option(name: .long, help: "Seconds.") var ttl: Int = 3600
        @Option(name: .long, help: "Why (shown in lists and the dashboard).") var reason: String = "manual"

        func run() async throws {
            guard IPAddress(address) != nil else { throw ValidationError("'\(address)' is not an IP address") }
            _ = try await options.json("POST", "/api/bans", body: ["address": address, "ttl_seconds": ttl, "reason": reason])
            print("banned \(address) for \(ttl) s")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List bans in force.")
        @OptionGroup var options: AdminOptions
        @Option(name: .long, help: "Only addresses or reasons containing this.") var filter: String = ""
        @Option(name: .long, help: "Most to show.") var limit: Int = 100

        func run() async throws {
            let q = filter.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            let page = try await options.json("GET", "/api/bans?limit=\(limit)&filter=\(q)") as? [String: Any] ?? [:]
            print("\(page["total"] as? Int ?? 0) bans in force")
            for b in page["bans"] as? [[String: Any]] ?? [] {
                print("\(pad(b["address"] as? String ?? "", 40)) \(lpad(String(b["remaining"] as? Int ?? 0), 7)) s  \(b["reason"] as? String ?? "")")
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Lift a ban.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "IPv4 or IPv6 address.") var address: String

        func run() async throws {
            _ = try await options.json("DELETE", "/api/bans/\(address)")
            print("lifted the ban on \(address)")
        }
    }
}

struct Mode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Force a site's mode on a running gateway, or return it to automatic.")
    @OptionGroup var options: AdminOptions
    @Argument(help: "Site name.") var site: String
    @Argument(help: "normal, elevated, under-attack or auto.") var mode: String

    func run() async throws {
        let m = mode.replacingOccurrences(of: "-", with: "_")
        guard ["normal", "elevated", "under_attack", "auto"].contains(m) else {
            throw ValidationError("mode must be normal, elevated, under-attack or auto")
        }
        let s = try await options.json("PUT", "/api/sites/\(site)/mode", body: ["mode": m]) as? [String: Any] ?? [:]
        print("\(site): \(s["mode"] as? String ?? m)\(m == "auto" ? " (automatic)" : " (forced)")")
    }
}

struct Incidents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List a running gateway's incidents, or show one.")
    @OptionGroup var options: AdminOptions
    @Option(name: .long, help: "Show this incident in full.") var id: Int?

    func run() async throws {
        if let id {
            let i = try await options.json("GET", "/api/incidents/\(id)")
            let data = try JSONSerialization.data(withJSONObject: i, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let list = try await options.json("GET", "/api/incidents") as? [[String: Any]] ?? []
        print("ID    SITE            START                 LENGTH   PEAK MODE      PEAK REQ/S  TO ORIGIN  CHALLENGED")
        for i in list {
            let start = Date(timeIntervalSince1970: Double(i["start"] as? Int ?? 0))
            let end = (i["end"] as? Int).map { "\($0 - (i["start"] as? Int ?? 0)) s" } ?? "open"
            print(
                [lpad(String(i["id"] as? Int ?? 0), 4), pad(i["site"] as? String ?? "", 15), pad(ISO8601DateFormatter().string(from: start), 21),
                 pad(end, 8), pad(i["peakMode"] as? String ?? "", 13), lpad(String(i["peakRequestsPerSecond"] as? Int ?? 0), 10),
                 lpad(String(i["toOrigin"] as? Int ?? 0), 10), lpad(String(i["challenged"] as? Int ?? 0), 11)].joined(separator: "  ")
            )
            // In a fleet: the fleet's incident it belongs to and every node's own figures.
            if let fleet = i["fleet"] as? [String: Any] {
                for n in fleet["nodes"] as? [[String: Any]] ?? [] {
                    func v(_ k: String) -> String { String(n[k] as? Int ?? 0) }
                    print("      fleet incident \(fleet["id"] as? Int ?? 0), node \(pad(n["node"] as? String ?? "", 12)) #\(pad(v("incident"), 5)) peak \(lpad(v("peakRequestsPerSecond"), 6))/s  requests \(lpad(v("requests"), 8))  refused \(lpad(v("refused"), 8))  challenged \(lpad(v("challenged"), 8))")
                }
            }
        }
    }
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }

struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Feed an access log (nginx combined, or Rampart JSON lines) through the detection engine offline."
    )

    @Argument(help: "Access log file.") var log: String
    @Option(name: .long, help: "Config whose first site's detection, rate limits and bans to use (default: the built-in defaults).")
    var config: String?
    @Option(name: .long, help: "Most log lines to read.") var maxLines: Int = 20_000_000

    func run() async throws {
        var detection = DetectionConfig()
        var rules = RateLimitRule.defaults
        var bans = BanPolicy()
        if let config {
            do {
                let c = try ConfigLoader.load(path: config)
                if let site = c.sites.first {
                    detection = site.detection
                    rules = site.rateLimits
                }
                bans = c.bans
            } catch {
                printErr(error.description)
                throw ExitCode(2)
            }
        }
        guard let handle = FileHandle(forReadingAtPath: log) else { throw ValidationError("cannot read '\(log)'") }
        var records: [LogRecord] = []
        var skipped = 0
        var lines = 0
        var pending = Data()
        while lines < maxLines {
            let chunk = handle.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            pending.append(chunk)
            while let nl = pending.firstIndex(of: 10), lines < maxLines {
                let line = String(decoding: pending[pending.startIndex..<nl], as: UTF8.self)
                pending.removeSubrange(pending.startIndex...nl)
                lines += 1
                if let r = Self.parse(line) { records.append(r) } else if !line.isEmpty { skipped += 1 }
            }
        }
        if !pending.isEmpty, let r = Self.parse(String(decoding: pending, as: UTF8.self)) { records.append(r) }
        let report = Replay.run(records, detection: detection, rules: rules, bans: bans)
        let fmt = ISO8601DateFormatter()
        func t(_ s: Int64) -> String { fmt.string(from: Date(timeIntervalSince1970: Double(s))) }
        print("\(report.requests) requests from \(t(report.firstTime)) to \(t(report.lastTime))\(skipped > 0 ? " (\(skipped) lines not understood)" : "")")
        print("peak \(report.peakRequestsPerSecond) req/s, \(report.peakDistinctSources) distinct sources in one second")
        print("")
        print("what Rampart would have done:")
        if report.events.isEmpty { print("  nothing: the traffic never left its baseline") }
        for e in report.events.prefix(200) { print("  \(t(e.time))  \(e.text)") }
        if report.events.count > 200 { print("  … \(report.events.count - 200) more events") }
        print("")
        let modes = SiteMode.allCases.map { "\($0.rawValue) \(report.secondsInMode[$0] ?? 0) s" }.joined(separator: ", ")
        print("time in each mode: \(modes)")
        print("refused by rate limits: \(report.limited); bans: \(report.bans); requests from banned sources refused at accept: \(report.refusedBanned)")
        print("")
        print("top sources:  " + report.topSources.prefix(5).map { "\($0.key) (\($0.count))" }.joined(separator: ", "))
        print("top subnets:  " + report.topSubnets.prefix(5).map { "\($0.key) (\($0.count))" }.joined(separator: ", "))
        print("top paths:    " + report.topPaths.prefix(5).map { "\($0.key) (\($0.count))" }.joined(separator: ", "))
        print("top agents:   " + report.topAgents.prefix(3).map { "\($0.key) (\($0.count))" }.joined(separator: ", "))
    }

    /// One line: Rampart's JSON access-log format (`time` as Unix seconds or ISO 8601, `client`,
    /// `method`, `path`, `status`, `agent`), else nginx `combined`.
    static func parse(_ line: String) -> LogRecord? {
        guard line.hasPrefix("{") else { return LogRecord.nginxCombined(Substring(line)) }
        guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
        let time: Int64?
        if let n = o["time"] as? Double, n.isFinite, n >= Double(LogRecord.plausibleTimes.lowerBound), n <= Double(LogRecord.plausibleTimes.upperBound) {
            time = Int64(n)
        } else if let s = o["time"] as? String {
            let f = ISO8601DateFormatter()
            f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            time = (f.date(from: s) ?? ISO8601DateFormatter().date(from: s)).map(\.timeIntervalSince1970)
                .flatMap { LogRecord.plausibleTimes.contains(Int64(exactly: $0.rounded(.down)) ?? -1) ? Int64($0) : nil }
        } else {
            time = nil
        }
        guard let time, let client = (o["client"] as? String ?? o["ip"] as? String).flatMap({ IPAddress($0) }) else { return nil }
        return LogRecord(
            time: time, client: client, method: o["method"] as? String ?? "GET", target: o["path"] as? String ?? o["uri"] as? String ?? "/",
            status: o["status"] as? Int ?? 0, agent: o["agent"] as? String ?? o["user_agent"] as? String ?? ""
        )
    }
}
