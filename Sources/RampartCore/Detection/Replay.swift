import NIOHTTP1

/// One request from an access log.
public struct LogRecord: Sendable, Equatable {
    /// Unix seconds.
    public var time: Int64
    public var client: IPAddress
    public var method: String
    public var target: String
    public var status: Int
    public var agent: String

    public init(time: Int64, client: IPAddress, method: String, target: String, status: Int, agent: String) {
        self.time = time
        self.client = client
        self.method = method
        self.target = target
        self.status = status
        self.agent = agent
    }

    /// Parses a line of nginx's `combined` format:
    /// `ADDR - USER [10/Oct/2000:13:55:36 -0700] "GET /path HTTP/1.1" 200 123 "referer" "agent"`.
    /// The time is taken from the bracket right before the request's opening quote: the user name
    /// before it comes from a client's `Authorization: Basic` header and may hold brackets too.
    public static func nginxCombined(_ line: Substring) -> LogRecord? {
        guard let space = line.firstIndex(of: " "), let client = IPAddress(line[..<space]),
            let quote = line.firstIndex(of: "\""),
            let close = line[..<quote].lastIndex(of: "]"), let open = line[..<close].lastIndex(of: "["),
            line[line.index(after: close)..<quote].allSatisfy({ $0 == " " }),
            let time = parseNginxTime(line[line.index(after: open)..<close]), plausibleTimes.contains(time)
        else { return nil }
        let rest = line[line.index(after: close)...]
        let quoted = rest.split(separator: "\"", omittingEmptySubsequences: false)
        // quoted: [" ", "GET / HTTP/1.1", " 200 123 ", "referer", " ", "agent", ""]
        guard quoted.count >= 3 else { return nil }
        let request = quoted[1].split(separator: " ")
        guard request.count >= 2 else { return nil }
        let status = quoted[2].split(separator: " ").first.flatMap { Int($0) } ?? 0
        let agent = quoted.count >= 6 ? String(quoted[5]) : ""
        return LogRecord(time: time, client: client, method: String(request[0]), target: String(request[1]), status: status, agent: agent)
    }

    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `10/Oct/2000:13:55:36 -0700` to Unix seconds.
    static func parseNginxTime(_ s: Substring) -> Int64? {
        let parts = s.split(whereSeparator: { $0 == "/" || $0 == ":" || $0 == " " })
        guard parts.count == 7, let day = Int(parts[0]), let month = months.firstIndex(of: String(parts[1])), let year = Int(parts[2]),
            let h = Int(parts[3]), let m = Int(parts[4]), let sec = Int(parts[5]), let tz = Int(parts[6]),
            (1...31).contains(day), (1970...2255).contains(year), (0...23).contains(h), (0...59).contains(m), (0...60).contains(sec),
            (-1400...1400).contains(tz), abs(tz % 100) < 60
        else { return nil }
        let offset = (tz / 100) * 3600 + (tz % 100) * 60
        return unixSeconds(year: year, month: month + 1, day: day, hour: h, minute: m, second: sec) - Int64(offset)
    }

    /// Unix seconds a log record may carry: 1970 to 2255 (the replay's clock counts nanoseconds in
    /// an Int64, which ends in 2262). Outside it a time is refused: a crafted date must not
    /// overflow that clock.
    public static let plausibleTimes: ClosedRange<Int64> = 0...9_000_000_000

    /// Days-from-civil (Howard Hinnant's algorithm), for UTC date parts.
    public static func unixSeconds(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Int64(days) * 86400 + Int64(hour * 3600 + minute * 60 + second)
    }
}

/// What the detection engine would have done with a past attack: `rampart replay`.
public struct ReplayReport: Sendable {
    public struct Event: Sendable, Equatable {
        public var time: Int64
        public var text: String
    }

    /// Mode changes and bans, in time order.
    public var events: [Event] = []
    public var requests = 0
    public var firstTime: Int64 = 0
    public var lastTime: Int64 = 0
    public var peakRequestsPerSecond = 0
    public var peakDistinctSources = 0
    /// Requests rate limits would have refused, and those from sources banned by then.
    public var limited = 0
    public var refusedBanned = 0
    public var bans = 0
    /// Seconds spent in each mode.
    public var secondsInMode: [SiteMode: Int] = [:]
    public var topSources: [TopEntry] = []
    public var topSubnets: [TopEntry] = []
    public var topPaths: [TopEntry] = []
    public var topAgents: [TopEntry] = []
}

/// Feeds access-log records through the same code the gateway runs: the site's rate limits,
/// automatic bans and the mode controller, one second at a time on the log's own clock.
public enum Replay {
    public static func run(
        _ records: [LogRecord], detection: DetectionConfig = DetectionConfig(), rules: [RateLimitRule] = RateLimitRule.defaults,
        bans policy: BanPolicy = BanPolicy()
    ) -> ReplayReport {
        var report = ReplayReport()
        let sorted = records.filter { LogRecord.plausibleTimes.contains($0.time) }.sorted { $0.time < $1.time }
        guard let first = sorted.first, let last = sorted.last else { return report }
        report.requests = sorted.count
        report.firstTime = first.time
        report.lastTime = last.time
        var controller = ModeController(config: detection)
        var limiter = SiteRateLimiter(rules: rules, loops: 1)
        var strikes = StrikeCounter(policy: policy, loops: 1)
        var banList = BanList(policy: policy)
        var totals = TrafficSecond()
        var index = 0
        // Every second from the first record to a calm minute after the last, so the mode can come
        // down; a gap longer than that calm window is jumped over (the mode is down by then), so two
        // records centuries apart cost two calm windows, not centuries of seconds.
        let calm = Int64(detection.calmUnderAttack + detection.calmElevated + 5)
        var second = first.time
        var idle: Int64 = 0
        while second <= last.time + calm {
            if idle >= calm, index < sorted.count, sorted[index].time > second {
                report.secondsInMode[controller.mode, default: 0] += Int(sorted[index].time - second)
                second = sorted[index].time
                idle = 0
            }
            defer { second += 1 }
            var s = TrafficSecond()
            while index < sorted.count, sorted[index].time == second {
                let r = sorted[index]
                index += 1
                // Nanoseconds on the log's clock, spread over the second so buckets refill evenly.
                let now = second * 1_000_000_000 + Int64(index % 1000) * 1_000_000
                if banList.isBanned(r.client, now: now) {
                    report.refusedBanned += 1
                    continue
                }
                s.requests += 1
                if r.method != "GET", r.method != "HEAD" { s.nonGet += 1 }
                s.sources.add(hash: mix64(r.client.high ^ mix64(r.client.low)))
                s.targets.add(hash: hashBytes(r.target.utf8))
                s.topSources.add(r.client)
                s.topSubnets.add(r.client.defaultSubnet)
                s.topPaths.add(r.target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? r.target)
                s.topAgents.add(r.agent)
                if case .limited = limiter.check(client: r.client, method: HTTPMethod(rawValue: r.method), target: r.target, apiKey: nil, now: now) {
                    s.limited += 1
                    report.limited += 1
                    if strikes.strike(r.client, now: now) {
                        let length = banList.ban(r.client, now: now)
                        report.bans += 1
                        report.events.append(.init(time: second, text: "ban \(r.client) for \(length.nanoseconds / 1_000_000_000) s (over its rate limit)"))
                    }
                }
            }
            report.peakRequestsPerSecond = max(report.peakRequestsPerSecond, s.requests)
            report.peakDistinctSources = max(report.peakDistinctSources, s.sources.estimate)
            if let change = controller.observe(s, at: second) {
                report.events.append(.init(time: second, text: "\(change.from.rawValue) -> \(change.to.rawValue) (\(change.tier.rawValue)): \(change.reason)"))
            }
            report.secondsInMode[controller.mode, default: 0] += 1
            idle = s.requests == 0 ? idle + 1 : 0
            totals.merge(s)
        }
        report.topSources = totals.topSources.top(10).map { TopEntry(key: $0.key.description, count: $0.count) }
        report.topSubnets = totals.topSubnets.top(10).map { TopEntry(key: $0.key.defaultSubnetDescription, count: $0.count) }
        report.topPaths = totals.topPaths.top(10).map { TopEntry(key: $0.key, count: $0.count) }
        report.topAgents = totals.topAgents.top(5).map { TopEntry(key: $0.key, count: $0.count) }
        return report
    }
}
