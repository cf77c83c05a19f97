import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import RampartCore

/// Refuses anything but loopback. Every address the drill sends to or from goes through here.
public enum DrillSafety {
    /// Source addresses of simulated legitimate users.
    public static let legitRange = CIDR("127.1.0.0/16")!
    /// Source addresses of simulated attackers (8 million addresses, for rotation).
    public static let attackRange = CIDR("127.128.0.0/9")!

    /// Parses `host:port` and refuses it unless the host is a loopback literal (127.0.0.0/8, ::1)
    /// or `localhost`. Names are not resolved: a name could point anywhere.
    public static func loopbackTarget(_ text: String) throws(DrillError) -> SocketAddress {
        guard let hp = HostPort(parsing: text), hp.port > 0 else {
            throw DrillError("target '\(text)' is not host:port")
        }
        let host = hp.host == "localhost" ? "127.0.0.1" : hp.host
        guard let ip = IPAddress(host) else {
            throw DrillError("refusing target '\(text)': only loopback IP literals (127.0.0.0/8, ::1) or localhost are allowed")
        }
        guard ip.isLoopback else {
            throw DrillError("refusing target '\(text)': \(ip) is not a loopback address; the drill only targets 127.0.0.0/8 and ::1")
        }
        do {
            return try SocketAddress(ipAddress: host, port: hp.port)
        } catch {
            throw DrillError("target '\(text)': \(error)")
        }
    }

    /// Parses a comma-separated list of gateway addresses (several nodes of a fleet), each
    /// refused unless it is loopback.
    public static func loopbackTargets(_ text: String) throws(DrillError) -> [SocketAddress] {
        let parts = text.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !parts.isEmpty else { throw DrillError("no target given") }
        var out: [SocketAddress] = []
        for part in parts { out.append(try loopbackTarget(part)) }
        return out
    }
}

/// A drill refusal or failure, with a message for the operator.
public struct DrillError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    public let description: String
    /// Wraps a message.
    public init(_ message: String) { description = message }
}

/// The attack scenarios of the product brief.
public enum ScenarioKind: String, CaseIterable, Sendable, Codable {
    case s1 = "S1", s2 = "S2", s3 = "S3", s4 = "S4", s5 = "S5", s6 = "S6", s7 = "S7", s8 = "S8", s9 = "S9", s11 = "S11", s12 = "S12"

    /// One line on what the scenario does.
    public var summary: String {
        switch self {
        case .s1: return "a few sources flooding GET / as fast as they can"
        case .s2: return "thousands of sources, each below per-IP limits, random query strings"
        case .s3: return "slowloris and slow POST from hundreds of sources"
        case .s4: return "POST /login flood from many sources"
        case .s5: return "every request from a fresh source address (proxy rotation)"
        case .s6: return "HTTP/2 rapid reset, CONTINUATION and PING/SETTINGS floods over TLS"
        case .s7: return "S1+S2+S3 at once, then the flood shifts to another path"
        case .s8: return "legitimate surge (10x users), no attack"
        case .s9: return "2,000 bots that keep cookies and follow redirects (no JavaScript), each at about a person's rate, on the home page, long-tail pages and searches"
        case .s11: return "credential spraying: 1,500 sources sending random API keys and random logins"
        case .s12: return "volumetric keep-alive flood: 3,000 sources, one connection each, cache-busting GETs back to back below per-source limits"
        }
    }
}

/// What to run, bounded in time and in requests.
public struct DrillPlan: Sendable {
    /// The gateways (or peer proxies) under test; loopback only. With several (the nodes of a
    /// fleet behind DNS round robin or an L4 balancer), each source address keeps to one of them.
    public var targets: [SocketAddress]
    /// The first gateway (the only one, usually).
    public var target: SocketAddress { targets[0] }
    /// Where the origin's counters are read (`GET /__origin/stats`); loopback only.
    public var originStats: SocketAddress
    /// Host header sent by every client (and the TLS server name).
    public var host = "example.org"
    /// The target speaks TLS (ALPN h2 and http/1.1): users and API clients use HTTP/1.1 over TLS,
    /// S6's attackers HTTP/2. S6 needs it.
    public var tls = false
    public var scenario: ScenarioKind
    /// Legit-only seconds before the attack.
    public var warmup: Double = 5
    /// Attack seconds.
    public var attack: Double = 20
    /// Legit-only seconds after the attack.
    public var cooldown: Double = 5
    /// The origin's capacity in requests per second (intensity is a multiple of it).
    public var originCapacity: Double = 200
    /// Attack rate as a multiple of the origin's capacity (paced scenarios).
    public var intensity: Double = 10
    /// Simulated browser users (each loads a page and two assets about once a second).
    public var legitUsers = 30
    /// Simulated API clients, each with its own key (`drill-api-key-NNNN`), two calls a second.
    public var apiClients = 5
    /// Simulated members: each logs in (`POST /login` with ``DrillRunner/memberPassword``), then
    /// reads account pages with their assets about once a second, keeping the origin's session.
    public var members = 5
    /// Hard cap on requests the drill sends in total.
    public var maxRequests = 2_000_000
    /// Per-request timeout.
    public var requestTimeout: TimeAmount = .seconds(5)
    /// Process id of the gateway, to sample its CPU and memory (optional).
    public var gatewayPID: Int32?

    /// A plan with the defaults above.
    public init(target: SocketAddress, originStats: SocketAddress, scenario: ScenarioKind) {
        self.init(targets: [target], originStats: originStats, scenario: scenario)
    }

    /// A plan against several gateways, with the defaults above.
    public init(targets: [SocketAddress], originStats: SocketAddress, scenario: ScenarioKind) {
        precondition(!targets.isEmpty, "a drill needs a target")
        self.targets = targets
        self.originStats = originStats
        self.scenario = scenario
    }

    var total: Double { warmup + attack + cooldown }

    /// The gateway that `source` sends to: always the same one for one source (as with source
    /// affinity in an L4 balancer), spread evenly over many sources.
    public func target(for source: IPAddress) -> SocketAddress {
        guard targets.count > 1 else { return targets[0] }
        // A fixed mix (not Swift's per-process seeded hash), so a run is reproducible.
        var x = source.high ^ (source.low &* 0x9E37_79B9_7F4A_7C15)
        x ^= x >> 31
        x = x &* 0xBF58_476D_1CE4_E5B9
        x ^= x >> 29
        return targets[Int(x % UInt64(targets.count))]
    }
}

/// One second of the drill.
public struct DrillSecond: Sendable, Codable {
    public var second: Int
    public var phase: String
    public var legitOK = 0
    public var legitFailed = 0
    /// Challenge pages legit users answered (solved or waited out).
    public var legitChallenged = 0
    public var attackSent = 0
    public var attackBlocked = 0
    public var originLegit = 0
    public var originAttack = 0
    public var gatewayCPUPercent: Double = 0
    public var gatewayRSSMB: Double = 0
}

/// The drill's result for one scenario.
public struct DrillReport: Sendable, Codable {
    public struct Phase: Sendable, Codable {
        public var legitPageViews = 0
        public var legitSucceeded = 0
        public var successPercent: Double = 100
        public var p50ms: Double = 0
        public var p95ms: Double = 0
        public var p99ms: Double = 0
        public var apiCalls = 0
        public var apiSuccessPercent: Double = 100
        /// Challenge pages legit users met (and answered) in this phase.
        public var challengesSeen = 0
    }

    /// One class of legitimate users over the attack window.
    public struct ClassFigures: Sendable, Codable {
        /// `browsers` (JavaScript), `no-js readers`, `members`, `api clients`.
        public var name: String
        public var requests = 0
        public var succeeded = 0
        /// Succeeded within 1 s of the first request (challenges included).
        public var within1s = 0
        /// Final answers with status 403 (a refusal, not a challenge that was answered).
        public var forbidden = 0
        public var successPercent: Double = 100
        public var within1sPercent: Double = 100
    }

    public var scenario: String
    public var summary: String
    public var target: String
    public var startedAt: String
    public var warmup: Phase
    public var attackWindow: Phase
    public var cooldown: Phase
    public var attackSent = 0
    public var attackReachedOrigin = 0
    /// Legitimate classes measured separately over the attack window.
    public var classes: [ClassFigures] = []
    /// Attack requests that reached the origin after the first 5 s of the attack, as a share of those sent then.
    public var leakageAfter5sPercent: Double = 0
    /// Seconds from attack start until the attack share reaching the origin first fell below 10%; nil if never.
    public var engagedAfterSeconds: Int?
    public var gatewayPeakCPUPercent: Double = 0
    public var gatewayPeakRSSMB: Double = 0
    /// The gateway's CPU time over the attack window divided by the attack requests sent in it, in
    /// microseconds (legit traffic's share included; it is small next to the flood). Nil without a
    /// gateway process to sample.
    public var gatewayCPUMicrosPerAttackRequest: Double?
    public var timeline: [DrillSecond] = []
}

/// Thread-safe collection of results while the drill runs.
final class Recorder: Sendable {
    struct State {
        var seconds: [DrillSecond]
        var latencies: [[Double]] = [[], [], []]  // by phase
        var pageViews = [0, 0, 0]
        var pageOK = [0, 0, 0]
        var apiCalls = [0, 0, 0]
        var apiOK = [0, 0, 0]
        var challenges = [0, 0, 0]
        var sent = 0
        /// Per legit class (``LegitClass``): requests, ok, ok within 1 s, 403s, over the attack window.
        var classes = [[Int]](repeating: [0, 0, 0, 0], count: LegitClass.allCases.count)
    }

    private let state: NIOLockedValueBox<State>
    let start: NIODeadline
    let plan: DrillPlan

    init(plan: DrillPlan, start: NIODeadline) {
        self.plan = plan
        self.start = start
        let n = Int(plan.total.rounded(.up)) + 1
        var seconds: [DrillSecond] = []
        for i in 0..<n { seconds.append(DrillSecond(second: i, phase: Recorder.phaseName(Double(i), plan))) }
        state = NIOLockedValueBox(State(seconds: seconds))
    }

    static func phaseName(_ t: Double, _ plan: DrillPlan) -> String {
        t < plan.warmup ? "warmup" : t < plan.warmup + plan.attack ? "attack" : "cooldown"
    }

    static func phaseIndex(_ t: Double, _ plan: DrillPlan) -> Int {
        t < plan.warmup ? 0 : t < plan.warmup + plan.attack ? 1 : 2
    }

    var elapsed: Double { Double((NIODeadline.now() - start).nanoseconds) / 1e9 }

    /// Reserves a request against the global cap; false when the cap is reached.
    func reserve() -> Bool {
        state.withLockedValue { s in
            guard s.sent < plan.maxRequests else { return false }
            s.sent += 1
            return true
        }
    }

    /// One request of a legit class, counted when it began in the attack window.
    func classRequest(_ c: LegitClass, status: Int, seconds: Double, at t: Double) {
        guard Self.phaseIndex(t, plan) == 1 else { return }
        state.withLockedValue { s in
            s.classes[c.rawValue][0] += 1
            if status == 200 {
                s.classes[c.rawValue][1] += 1
                if seconds <= 1 { s.classes[c.rawValue][2] += 1 }
            }
            if status == 403 { s.classes[c.rawValue][3] += 1 }
        }
    }

    func pageView(ok: Bool, seconds latency: Double, at t: Double) {
        let phase = Self.phaseIndex(t, plan)
        state.withLockedValue { s in
            let i = min(Int(t), s.seconds.count - 1)
            if ok { s.seconds[i].legitOK += 1 } else { s.seconds[i].legitFailed += 1 }
            s.pageViews[phase] += 1
            if ok {
                s.pageOK[phase] += 1
                s.latencies[phase].append(latency)
            }
        }
    }

    func challengeSeen() {
        let t = elapsed
        let phase = Self.phaseIndex(t, plan)
        state.withLockedValue { s in
            s.challenges[phase] += 1
            s.seconds[min(Int(t), s.seconds.count - 1)].legitChallenged += 1
        }
    }

    func api(ok: Bool, at t: Double) {
        let phase = Self.phaseIndex(t, plan)
        state.withLockedValue { s in
            s.apiCalls[phase] += 1
            if ok { s.apiOK[phase] += 1 }
        }
    }

    func attack(status: Int, at t: Double) {
        state.withLockedValue { s in
            let i = min(Int(t), s.seconds.count - 1)
            s.seconds[i].attackSent += 1
            // Anything but the origin's page counts as stopped at the gateway (429, 403, 503, reset).
            if status != 200 { s.seconds[i].attackBlocked += 1 }
        }
    }

    func origin(second: Int, legit: Int, attack: Int, cpu: Double, rss: Double) {
        state.withLockedValue { s in
            guard second < s.seconds.count else { return }
            s.seconds[second].originLegit = legit
            s.seconds[second].originAttack = attack
            s.seconds[second].gatewayCPUPercent = cpu
            s.seconds[second].gatewayRSSMB = rss
        }
    }

    func report(target: String, startedAt: String) -> DrillReport {
        let s = state.withLockedValue { $0 }
        func phase(_ i: Int) -> DrillReport.Phase {
            var p = DrillReport.Phase()
            p.legitPageViews = s.pageViews[i]
            p.legitSucceeded = s.pageOK[i]
            p.successPercent = s.pageViews[i] == 0 ? 100 : 100 * Double(s.pageOK[i]) / Double(s.pageViews[i])
            let sorted = s.latencies[i].sorted()
            func q(_ f: Double) -> Double { sorted.isEmpty ? 0 : 1000 * sorted[min(sorted.count - 1, Int(Double(sorted.count) * f))] }
            p.apiCalls = s.apiCalls[i]
            p.challengesSeen = s.challenges[i]
            p.apiSuccessPercent = s.apiCalls[i] == 0 ? 100 : 100 * Double(s.apiOK[i]) / Double(s.apiCalls[i])
            p.p50ms = q(0.50)
            p.p95ms = q(0.95)
            p.p99ms = q(0.99)
            return p
        }
        var r = DrillReport(
            scenario: plan.scenario.rawValue,
            summary: plan.scenario.summary,
            target: target,
            startedAt: startedAt,
            warmup: phase(0),
            attackWindow: phase(1),
            cooldown: phase(2)
        )
        let attackStart = Int(plan.warmup)
        let attackEnd = Int(plan.warmup + plan.attack)
        var sentAfter5 = 0
        var reachedAfter5 = 0
        var attackCPUPercentSeconds = 0.0
        var sentInAttack = 0
        for sec in s.seconds {
            if sec.second >= attackStart, sec.second < attackEnd {
                attackCPUPercentSeconds += sec.gatewayCPUPercent
                sentInAttack += sec.attackSent
            }
            r.attackSent += sec.attackSent
            r.attackReachedOrigin += sec.originAttack
            if sec.second >= attackStart + 5, sec.second < attackEnd + 1 {
                sentAfter5 += sec.attackSent
                reachedAfter5 += sec.originAttack
            }
            if r.engagedAfterSeconds == nil, sec.second >= attackStart, sec.second < attackEnd, sec.attackSent > 0,
                Double(sec.originAttack) < 0.1 * Double(sec.attackSent)
            {
                r.engagedAfterSeconds = sec.second - attackStart
            }
            r.gatewayPeakCPUPercent = max(r.gatewayPeakCPUPercent, sec.gatewayCPUPercent)
            r.gatewayPeakRSSMB = max(r.gatewayPeakRSSMB, sec.gatewayRSSMB)
        }
        r.leakageAfter5sPercent = sentAfter5 == 0 ? 0 : 100 * Double(reachedAfter5) / Double(sentAfter5)
        if plan.gatewayPID != nil, sentInAttack > 0 {
            // A percent of one CPU for one second is 10,000 µs.
            r.gatewayCPUMicrosPerAttackRequest = attackCPUPercentSeconds * 10_000 / Double(sentInAttack)
        }
        r.timeline = s.seconds
        r.classes = LegitClass.allCases.map { c in
            let v = s.classes[c.rawValue]
            var f = DrillReport.ClassFigures(name: c.name)
            f.requests = v[0]
            f.succeeded = v[1]
            f.within1s = v[2]
            f.forbidden = v[3]
            f.successPercent = v[0] == 0 ? 100 : 100 * Double(v[1]) / Double(v[0])
            f.within1sPercent = v[0] == 0 ? 100 : 100 * Double(v[2]) / Double(v[0])
            return f
        }
        return r
    }
}

/// The classes of legitimate users the drill measures separately (the worst is the score).
public enum LegitClass: Int, CaseIterable, Sendable {
    case browser, noScript, member, api

    /// The name in reports.
    public var name: String {
        switch self {
        case .browser: return "browsers"
        case .noScript: return "no-js readers"
        case .member: return "members"
        case .api: return "api clients"
        }
    }
}
