import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import RampartCore

/// Runs one scenario: simulated users throughout, the attack in its window, the origin's counters
/// and the gateway's CPU and memory sampled every second. Every loop checks the clock and the
/// request cap, so a run always ends.
public final class DrillRunner: Sendable {
    let plan: DrillPlan
    let group: MultiThreadedEventLoopGroup
    /// TLS settings when the target speaks TLS.
    let tls: DrillTLS?

    /// Prepares a run; `threads` event loops generate the load.
    public init(plan: DrillPlan, threads: Int = 1) {
        self.plan = plan
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        self.tls = plan.tls ? try? DrillTLS(serverName: plan.host) : nil
    }

    /// Runs the plan to its end and returns the report.
    public func run() async -> DrillReport {
        let startedAt = ISO8601DateFormatter().string(from: Date())
        let recorder = Recorder(plan: plan, start: .now())
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await self.sampleEverySecond(recorder) }
            let users = plan.legitUsers
            for i in 0..<users {
                tasks.addTask { await self.legitUser(i, recorder: recorder, from: 0, until: self.plan.total) }
            }
            if plan.scenario == .s8 {
                // A legitimate surge: ten times the users during the "attack" window.
                for i in users..<(users * 10) {
                    tasks.addTask {
                        await self.legitUser(i, recorder: recorder, from: self.plan.warmup, until: self.plan.warmup + self.plan.attack)
                    }
                }
            }
            for i in 0..<plan.apiClients {
                tasks.addTask { await self.apiClient(i, recorder: recorder) }
            }
            for i in 0..<plan.members {
                tasks.addTask { await self.member(i, recorder: recorder) }
            }
            for attacker in attackers() {
                tasks.addTask { await attacker(recorder) }
            }
        }
        try? await group.shutdownGracefully()
        return recorder.report(target: plan.targets.map { "\($0)" }.joined(separator: ","), startedAt: startedAt)
    }

    // MARK: - Legitimate users

    private func legitUser(_ index: Int, recorder: Recorder, from: Double, until: Double) async {
        // Users come from different /24s, as real visitors do (256 of them in the legit range).
        let source = IPAddress(v4: DrillSafety.legitRange.network.v4Value! &+ UInt32((index % 256) * 256 + index / 256 + 1))
        var connection: DrillConnection?
        var cookies: [String: String] = [:]
        await sleep(until: from + Double.random(in: 0..<1), recorder: recorder)
        while recorder.elapsed < until {
            let t = recorder.elapsed
            let began = NIODeadline.now()
            var ok = true
            var path = "/"
            // The page, following up to three redirects with the cookies they set and answering a
            // challenge page as a browser would (solving the puzzle with JavaScript, or waiting for
            // the meta refresh without it), then two assets.
            var redirects = 0
            var challenges = 0
            var status = 0
            while true {
                guard recorder.reserve() else { return }
                let r = await request(&connection, source: source, method: .GET, path: path, cookies: &cookies, extra: [])
                if redirects < 4, let location = r.redirectPath {
                    redirects += 1
                    path = location
                    continue
                }
                if r.headers.first(name: "x-rampart-challenge") != nil, challenges < 3,
                    let next = await Self.answerChallenge(r.smallBody, javaScript: !Self.isNoScriptUser(index))
                {
                    challenges += 1
                    recorder.challengeSeen()
                    path = next
                    continue
                }
                ok = r.status == 200
                status = r.status
                break
            }
            if ok {
                for asset in ["/static/site.css", "/static/app.js"] {
                    // Browsers follow redirects for subresources too (a cookie check that began
                    // between the page and its assets is passed the same way).
                    var target = asset
                    var hops = 0
                    while true {
                        guard recorder.reserve() else { return }
                        let r = await request(&connection, source: source, method: .GET, path: target, cookies: &cookies, extra: [])
                        if hops < 3, let location = r.redirectPath {
                            hops += 1
                            target = location
                            continue
                        }
                        if r.status != 200, ok {
                            ok = false
                            status = r.status
                        }
                        break
                    }
                }
            }
            let seconds = Double((NIODeadline.now() - began).nanoseconds) / 1e9
            recorder.pageView(ok: ok, seconds: seconds, at: t)
            recorder.classRequest(Self.isNoScriptUser(index) ? .noScript : .browser, status: status, seconds: seconds, at: t)
            await sleep(until: t + 1.0 + Double.random(in: -0.1...0.1), recorder: recorder)
        }
        connection?.close()
    }

    /// One user in five browses without JavaScript (screen readers, locked-down machines).
    static func isNoScriptUser(_ index: Int) -> Bool { index % 5 == 4 }

    /// What a browser does with a challenge page: with JavaScript, solve the proof of work exactly
    /// as the page's script does and follow its answer URL; without, wait for the `<noscript>` meta
    /// refresh and follow it. Nil when the page has neither (a dead end).
    public static func answerChallenge(_ body: String, javaScript: Bool) async -> String? {
        if javaScript, let c = between(body, #"var C=""#, #"""#), let d = between(body, ",D=", ","), let difficulty = Int(d),
            let base = between(body, #"location.replace(""#, #"""#),
            let answer = ProofOfWork.solve(challenge: c, difficulty: difficulty, limit: 1 << 24)
        {
            return base + answer
        }
        guard let refresh = between(body, #"http-equiv="refresh" content=""#, #"""#),
            let semicolon = refresh.firstIndex(of: ";"), let seconds = Double(refresh[..<semicolon]),
            let url = refresh[refresh.index(after: semicolon)...].split(separator: "=", maxSplits: 1).last
        else { return nil }
        try? await Task.sleep(nanoseconds: UInt64(min(max(seconds, 0), 30) * 1e9))
        return String(url).replacingOccurrences(of: "&amp;", with: "&")
    }

    private static func between(_ text: String, _ start: String, _ end: String) -> String? {
        guard let a = text.range(of: start), let b = text.range(of: end, range: a.upperBound..<text.endIndex) else { return nil }
        return String(text[a.upperBound..<b.lowerBound])
    }

    /// The key simulated API client `i` sends (configure it in the gateway's `api_keys`).
    public static func apiKey(_ i: Int) -> String { "drill-api-key-" + String(format: "%04d", i) }

    private func apiClient(_ index: Int, recorder: Recorder) async {
        // API clients sit in the last /24 of the legit range.
        let source = IPAddress(v4: DrillSafety.legitRange.network.v4Value! &+ UInt32(255 * 256 + index + 1))
        var connection: DrillConnection?
        var cookies: [String: String] = [:]
        await sleep(until: Double.random(in: 0..<0.5), recorder: recorder)
        while recorder.elapsed < plan.total, recorder.reserve() {
            let t = recorder.elapsed
            let r = await request(
                &connection, source: source, method: .GET, path: "/api/status", cookies: &cookies,
                extra: [("Authorization", "Bearer \(Self.apiKey(index))"), ("Accept", "application/json")]
            )
            recorder.api(ok: r.status == 200, at: t)
            recorder.classRequest(.api, status: r.status, seconds: recorder.elapsed - t, at: t)
            await sleep(until: t + 0.5, recorder: recorder)
        }
        connection?.close()
    }

    /// The password simulated members log in with (the drill's origin accepts it when it checks
    /// credentials: `rampart-drill origin --check-credentials`).
    public static let memberPassword = "correct-horse-battery"

    /// A logged-in member: logs in once (again when the session is lost), then reads account pages
    /// and their assets about once a second, with the origin's session cookie and whatever else
    /// the gateway sets. Members come from /24s of their own (from the 128th of the legit range
    /// on), as people at home do.
    private func member(_ index: Int, recorder: Recorder) async {
        let source = IPAddress(v4: DrillSafety.legitRange.network.v4Value! &+ UInt32((128 + index % 120) * 256 + index / 120 + 1))
        var connection: DrillConnection?
        var cookies: [String: String] = [:]
        await sleep(until: Double.random(in: 0..<1), recorder: recorder)
        var page = 0
        while recorder.elapsed < plan.total {
            let t = recorder.elapsed
            if cookies["sessionid"] == nil {
                guard recorder.reserve() else { return }
                let r = await request(
                    &connection, source: source, method: .POST, path: "/login", cookies: &cookies,
                    extra: [("Content-Type", "application/x-www-form-urlencoded")], body: "user=member\(index)&password=\(Self.memberPassword)"
                )
                recorder.classRequest(.member, status: r.status == 303 || r.status == 302 ? 200 : r.status, seconds: recorder.elapsed - t, at: t)
                if cookies["sessionid"] == nil { await sleep(until: t + 1, recorder: recorder) }
                continue
            }
            page += 1
            var status = 200
            for path in ["/account/orders?page=\(page % 50)", "/static/site.css", "/static/app.js"] {
                guard recorder.reserve() else { return }
                let r = await request(&connection, source: source, method: .GET, path: path, cookies: &cookies, extra: [])
                if r.status != 200 {
                    status = r.status
                    break
                }
            }
            recorder.classRequest(.member, status: status, seconds: recorder.elapsed - t, at: t)
            await sleep(until: t + 1.0 + Double.random(in: -0.1...0.1), recorder: recorder)
        }
        connection?.close()
    }

    private func request(
        _ connection: inout DrillConnection?,
        source: IPAddress,
        method: HTTPMethod,
        path: String,
        cookies: inout [String: String],
        extra: [(String, String)],
        body: String? = nil
    ) async -> DrillResponse {
        if connection == nil || !(connection!.isActive) {
            connection = try? await DrillConnection.connect(group: group, source: source, target: plan.target(for: source), timeout: .seconds(2), tls: tls)
        }
        guard let conn = connection else { return DrillResponse(status: 0, headers: [:], bodyBytes: 0, smallBody: "", seconds: 0) }
        var headers = HTTPHeaders([("Host", plan.host), ("User-Agent", "Mozilla/5.0 (rampart-drill legit)"), ("Accept", "text/html,*/*")])
        if !cookies.isEmpty { headers.add(name: "Cookie", value: cookies.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: "; ")) }
        for (k, v) in extra { headers.add(name: k, value: v) }
        let r = await conn.send(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers), body: body, timeout: plan.requestTimeout)
        for value in r.headers["set-cookie"] {
            let pair = value.split(separator: ";")[0].split(separator: "=", maxSplits: 1)
            if pair.count == 2 { cookies[String(pair[0]).trimmingCharacters(in: .whitespaces)] = String(pair[1]) }
        }
        if r.status == 0 || r.headers.first(name: "connection")?.lowercased() == "close" {
            conn.close()
            connection = nil
        }
        return r
    }

    // MARK: - Attackers

    typealias Attacker = @Sendable (Recorder) async -> Void

    private func attackers() -> [Attacker] {
        let start = plan.warmup
        let end = plan.warmup + plan.attack
        let rate = plan.intensity * plan.originCapacity
        switch plan.scenario {
        case .s1:
            return flood(sources: 4, connectionsPerSource: 16, start: start, end: end)
        case .s2:
            return paced(sources: 2000, rate: rate, start: start, end: end, method: .GET) { _ in "/?r=\(UInt32.random(in: 0...UInt32.max))" }
        case .s3:
            return slow(sources: 300, start: start, end: end)
        case .s4:
            return paced(sources: 1000, rate: rate, start: start, end: end, method: .POST) { _ in "/login" }
        case .s5:
            return paced(sources: 0, rate: rate, start: start, end: end, method: .GET) { _ in "/?r=\(UInt32.random(in: 0...UInt32.max))" }
        case .s7:
            let mid = start + plan.attack / 2
            return flood(sources: 4, connectionsPerSource: 8, start: start, end: end)
                + paced(sources: 2000, rate: rate / 2, start: start, end: end, method: .GET) { t in
                    t < mid ? "/?r=\(UInt32.random(in: 0...UInt32.max))" : "/search?q=\(UInt32.random(in: 0...UInt32.max))"
                }
                + slow(sources: 100, start: start, end: end)
        case .s6:
            return http2Floods(rate: rate, start: start, end: end)
        case .s8:
            return []
        case .s9:
            return cookieBots(sources: 2000, rate: rate, start: start, end: end)
        case .s11:
            return spray(sources: 1500, rate: rate, start: start, end: end)
        case .s12:
            return keepAliveFlood(sources: 3000, rate: rate, start: start, end: end)
        }
    }

    /// Volumetric keep-alive flood: every source keeps one connection and sends cache-busting GETs
    /// on it back to back, each source at `rate / sources` requests a second (below per-address
    /// limits), the next request as soon as the answer is in and its slot has come.
    private func keepAliveFlood(sources: Int, rate: Double, start: Double, end: Double) -> [Attacker] {
        let interval = Double(sources) / max(rate, 1)
        return (0..<sources).map { s in
            { recorder in
                await self.sleep(until: start + interval * Double(s) / Double(sources), recorder: recorder)
                let source = self.attackSource(200_000 + s)
                var conn: DrillConnection?
                var jar: [String: String] = [:]
                var next = recorder.elapsed
                while recorder.elapsed < end, recorder.reserve() {
                    let t = recorder.elapsed
                    let r = await self.attackRequest(&conn, source: source, method: .GET, path: "/?r=\(UInt32.random(in: 0...UInt32.max))", jar: &jar)
                    recorder.attack(status: r.status, at: t)
                    next += interval
                    if next > recorder.elapsed { await self.sleep(until: next, recorder: recorder) } else { next = recorder.elapsed }
                    if r.status == 0 { await self.pause(0.05) }
                }
                conn?.close()
            }
        }
    }

    /// Bots that keep cookies and follow redirects, without JavaScript or meta refresh: every
    /// source at `rate / sources` requests a second (a person's pace), on the home page, long-tail
    /// articles and random searches, over one keep-alive connection with its cookie jar.
    private func cookieBots(sources: Int, rate: Double, start: Double, end: Double) -> [Attacker] {
        let interval = Double(sources) / max(rate, 1)
        return (0..<sources).map { s in
            { recorder in
                await self.sleep(until: start + interval * Double(s) / Double(sources), recorder: recorder)
                let source = self.attackSource(300_000 + s)
                var conn: DrillConnection?
                var jar: [String: String] = [:]
                var next = recorder.elapsed
                while recorder.elapsed < end, recorder.reserve() {
                    let t = recorder.elapsed
                    var path: String
                    switch Int.random(in: 0..<3) {
                    case 0: path = "/"
                    case 1: path = "/article/\(Int.random(in: 0..<100_000))"
                    default: path = "/search?q=\(UInt32.random(in: 0...UInt32.max))"
                    }
                    var r = await self.attackRequest(&conn, source: source, method: .GET, path: path, jar: &jar, keepCookies: true)
                    var hops = 0
                    while hops < 3, let location = r.redirectPath, recorder.reserve() {
                        hops += 1
                        path = location
                        r = await self.attackRequest(&conn, source: source, method: .GET, path: path, jar: &jar, keepCookies: true)
                    }
                    recorder.attack(status: r.status, at: t)
                    next += interval
                    if next > recorder.elapsed { await self.sleep(until: next, recorder: recorder) } else { next = recorder.elapsed }
                    if r.status == 0 { await self.pause(0.05) }
                }
                conn?.close()
            }
        }
    }

    /// Credential spraying: every source, at `rate / sources` requests a second, alternates a
    /// login with a random user name and password and an API call with a random bearer key,
    /// each on a new connection.
    private func spray(sources: Int, rate: Double, start: Double, end: Double) -> [Attacker] {
        let interval = Double(sources) / max(rate, 1)
        return (0..<sources).map { s in
            { recorder in
                await self.sleep(until: start + interval * Double(s) / Double(sources), recorder: recorder)
                let source = self.attackSource(400_000 + s)
                var next = recorder.elapsed
                var n = s
                while recorder.elapsed < end, recorder.reserve() {
                    let t = recorder.elapsed
                    var conn: DrillConnection?
                    var jar: [String: String] = [:]
                    n += 1
                    let r: DrillResponse
                    if n % 2 == 0 {
                        r = await self.attackRequest(
                            &conn, source: source, method: .POST, path: "/login", jar: &jar,
                            body: "user=u\(UInt32.random(in: 0...UInt32.max))&password=p\(UInt32.random(in: 0...UInt32.max))", close: true
                        )
                    } else {
                        r = await self.attackRequest(
                            &conn, source: source, method: .GET, path: "/api/orders", jar: &jar, close: true,
                            extra: [("Authorization", "Bearer sprayed-\(UInt64.random(in: 0...UInt64.max))")]
                        )
                    }
                    recorder.attack(status: r.status, at: t)
                    next += interval
                    if next > recorder.elapsed { await self.sleep(until: next, recorder: recorder) } else { next = recorder.elapsed }
                }
            }
        }
    }

    /// Attack source number `n`: consecutive numbers fall in different /24s (32,768 of them), as a
    /// botnet's members do, so subnet limits get no free help from the simulation.
    func attackSource(_ n: Int) -> IPAddress {
        let m = n % (32_768 * 254)
        return IPAddress(v4: DrillSafety.attackRange.network.v4Value! &+ UInt32((m % 32_768) * 256 + m / 32_768 + 1))
    }

    /// Closed-loop flood: every connection sends its next request as soon as the last one ended.
    private func flood(sources: Int, connectionsPerSource: Int, start: Double, end: Double) -> [Attacker] {
        var out: [Attacker] = []
        for s in 0..<sources {
            for _ in 0..<connectionsPerSource {
                let source = attackSource(s)
                out.append { recorder in
                    await self.sleep(until: start, recorder: recorder)
                    var conn: DrillConnection?
                    var jar: [String: String] = [:]
                    while recorder.elapsed < end, recorder.reserve() {
                        let t = recorder.elapsed
                        let r = await self.attackRequest(&conn, source: source, method: .GET, path: "/", jar: &jar)
                        recorder.attack(status: r.status, at: t)
                        if r.status == 0 { await self.pause(0.05) }
                    }
                    conn?.close()
                }
            }
        }
        return out
    }

    /// Paced, open-loop attack: `rate` requests per second in total from `sources` addresses (0: a
    /// fresh address and connection for every request), from 64 workers that do not wait for
    /// answers before sending on (each keeps at most 32 requests in flight), as real floods do.
    private func paced(
        sources: Int,
        rate: Double,
        start: Double,
        end: Double,
        method: HTTPMethod,
        path: @escaping @Sendable (Double) -> String
    ) -> [Attacker] {
        let workers = 64
        let maxInFlight = 32
        let interval = Double(workers) / max(rate, 1)
        return (0..<workers).map { w in
            { recorder in
                await self.sleep(until: start + interval * Double(w) / Double(workers), recorder: recorder)
                let idle = IdleConnections()
                await withTaskGroup(of: Void.self) { inFlight in
                    var running = 0
                    var next = recorder.elapsed
                    var n = w
                    while recorder.elapsed < end, recorder.reserve() {
                        if running >= maxInFlight {
                            await inFlight.next()
                            running -= 1
                        }
                        let sourceIndex = sources == 0 ? Int.random(in: 0..<8_000_000) : n % sources
                        n += workers
                        let t = recorder.elapsed
                        let target = path(t)
                        running += 1
                        inFlight.addTask {
                            var conn = sources == 0 ? nil : idle.take(sourceIndex)
                            let body = method == .POST ? "username=user\(sourceIndex)&password=guess" : nil
                            var jar: [String: String] = [:]
                            let r = await self.attackRequest(
                                &conn, source: self.attackSource(sourceIndex), method: method, path: target, jar: &jar, body: body,
                                close: sources == 0
                            )
                            recorder.attack(status: r.status, at: t)
                            if let conn { idle.put(sourceIndex, conn) }
                        }
                        next += interval
                        if next > recorder.elapsed { await self.sleep(until: next, recorder: recorder) } else { next = recorder.elapsed }
                    }
                }
                idle.closeAll()
            }
        }
    }

    /// Slowloris (headers trickled) and slow POST (body trickled) connections, reopened when cut.
    private func slow(sources: Int, start: Double, end: Double) -> [Attacker] {
        (0..<sources).map { s in
            { recorder in
                await self.sleep(until: start + Double(s % 20) * 0.05, recorder: recorder)
                let source = self.attackSource(100_000 + s)
                let slowPost = s % 3 == 2
                while recorder.elapsed < end, recorder.reserve() {
                    let t = recorder.elapsed
                    guard let channel = try? await DrillConnection.openChannel(
                        group: self.group, source: source, target: self.plan.target(for: source), timeout: .seconds(2), tls: self.tls, alpn: \.http1
                    ) else {
                        recorder.attack(status: 0, at: t)
                        await self.pause(0.5)
                        continue
                    }
                    let opening = slowPost
                        ? "POST /login HTTP/1.1\r\nHost: \(self.plan.host)\r\nContent-Length: 100000\r\n\r\n"
                        : "GET / HTTP/1.1\r\nHost: \(self.plan.host)\r\n"
                    _ = try? await channel.writeAndFlush(ByteBuffer(string: opening)).get()
                    var i = 0
                    while channel.isActive, recorder.elapsed < end {
                        await self.pause(1.0)
                        i += 1
                        let trickle = slowPost ? "a" : "X-Slow-\(i): \(i)\r\n"
                        _ = try? await channel.writeAndFlush(ByteBuffer(string: trickle)).get()
                    }
                    // A connection the gateway cut counts as stopped there.
                    recorder.attack(status: channel.isActive ? 200 : 0, at: t)
                    try? await channel.close().get()
                }
            }
        }
    }

    private func attackRequest(
        _ connection: inout DrillConnection?,
        source: IPAddress,
        method: HTTPMethod,
        path: String,
        jar: inout [String: String],
        body: String? = nil,
        close: Bool = false,
        extra: [(String, String)] = [],
        keepCookies: Bool = false
    ) async -> DrillResponse {
        if connection == nil || !(connection!.isActive) {
            connection = try? await DrillConnection.connect(group: group, source: source, target: plan.target(for: source), timeout: .seconds(2), tls: tls)
        }
        guard let conn = connection else { return DrillResponse(status: 0, headers: [:], bodyBytes: 0, smallBody: "", seconds: 0) }
        var headers = HTTPHeaders([("Host", plan.host), ("User-Agent", "Mozilla/5.0 (flood)")])
        if keepCookies, !jar.isEmpty { headers.add(name: "Cookie", value: jar.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: "; ")) }
        for (k, v) in extra { headers.add(name: k, value: v) }
        if close { headers.add(name: "Connection", value: "close") }
        if method == .POST { headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded") }
        let r = await conn.send(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers), body: body, timeout: plan.requestTimeout)
        for value in r.headers["set-cookie"] where keepCookies {
            let pair = value.split(separator: ";")[0].split(separator: "=", maxSplits: 1)
            if pair.count == 2 { jar[String(pair[0]).trimmingCharacters(in: .whitespaces)] = String(pair[1]) }
        }
        if r.status == 0 || close || r.headers.first(name: "connection")?.lowercased() == "close" {
            conn.close()
            connection = nil
        }
        return r
    }

    // MARK: - Sampling

    private func sampleEverySecond(_ recorder: Recorder) async {
        var previous: [Int]? = nil
        var previousCPU: Double? = nil
        var second = 0
        var statsConnection: DrillConnection?
        while recorder.elapsed < plan.total + 0.5 {
            await sleep(until: Double(second) + 1, recorder: recorder)
            let counts = await originCounts(&statsConnection)
            let cpu = Self.cpuSeconds(plan.gatewayPID)
            let rss = Self.rssMB(plan.gatewayPID)
            if let counts, let prev = previous, counts.count >= 2, prev.count >= 2 {
                let cpuPercent = (cpu.flatMap { c in previousCPU.map { 100 * (c - $0) } }) ?? 0
                recorder.origin(second: second, legit: counts[0] - prev[0], attack: counts[1] - prev[1], cpu: cpuPercent, rss: rss ?? 0)
            }
            if let counts { previous = counts }
            previousCPU = cpu
            second += 1
        }
        statsConnection?.close()
    }

    private func originCounts(_ connection: inout DrillConnection?) async -> [Int]? {
        if connection == nil || !(connection!.isActive) {
            connection = try? await DrillConnection.connect(group: group, source: IPAddress(v4: 0x7F00_0001), target: plan.originStats, timeout: .seconds(1))
        }
        guard let conn = connection else { return nil }
        let r = await conn.send(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/__origin/stats", headers: ["Host": "origin"]), timeout: .seconds(1))
        guard r.status == 200,
            let json = try? JSONSerialization.jsonObject(with: Data(r.smallBody.utf8)) as? [String: Any],
            let perRange = json["per_range"] as? [Int]
        else { return nil }
        return perRange
    }

    /// The process and its direct children (nginx's workers under its master, for example).
    static func family(_ pid: Int32) -> [Int32] {
        let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return [pid] + children.split(separator: " ").compactMap { Int32($0) }
    }

    static func cpuSeconds(_ pid: Int32?) -> Double? {
        guard let pid else { return nil }
        var total = 0.0
        var any = false
        for p in family(pid) {
            if let c = cpuSecondsOne(p) {
                total += c
                any = true
            }
        }
        return any ? total : nil
    }

    static func rssMB(_ pid: Int32?) -> Double? {
        guard let pid else { return nil }
        let values = family(pid).compactMap { rssMBOne($0) }
        return values.isEmpty ? nil : values.reduce(0, +)
    }

    static func cpuSecondsOne(_ pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return nil }
        return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func rssMBOne(_ pid: Int32) -> Double? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kb = line.split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? 0
            return kb / 1024
        }
        return nil
    }

    func sleep(until t: Double, recorder: Recorder) async {
        let wait = t - recorder.elapsed
        if wait > 0 { await pause(wait) }
    }

    func pause(_ seconds: Double) async {
        try? await Task.sleep(nanoseconds: UInt64(max(0, seconds) * 1e9))
    }
}

/// Idle keep-alive connections of one paced worker, by source number.
final class IdleConnections: Sendable {
    private let box = NIOLockedValueBox<[Int: DrillConnection]>([:])

    func take(_ source: Int) -> DrillConnection? {
        box.withLockedValue { $0.removeValue(forKey: source) }
    }

    func put(_ source: Int, _ conn: DrillConnection) {
        let extra = box.withLockedValue { idle -> DrillConnection? in
            if idle[source] == nil {
                idle[source] = conn
                return nil
            }
            return conn
        }
        extra?.close()
    }

    func closeAll() {
        for c in box.withLockedValue({ $0.values }) { c.close() }
    }
}
