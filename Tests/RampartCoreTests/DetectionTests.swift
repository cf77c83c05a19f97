import Testing

@testable import RampartCore

/// Synthetic seconds of traffic for the mode controller.
private func second(
    requests: Int, sources: Int, distinctTargets: Int, limited: Int = 0, cleared: Int = 0, uncleared: Int = 0,
    saturated: Bool = false, posts: Int = 0, clearedTargets: Int = 0
) -> TrafficSecond {
    var s = TrafficSecond()
    s.nonGet = posts
    for i in 0..<clearedTargets { s.clearedTargets.add(hash: mix64(UInt64(i) &+ 0xC1EA)) }
    s.requests = requests
    s.limited = limited
    s.cleared = cleared
    s.uncleared = uncleared
    if saturated { s.queuePeak = 10 }
    for i in 0..<sources { s.sources.add(hash: mix64(UInt64(i) &+ 0xABC)) }
    for i in 0..<distinctTargets { s.targets.add(hash: mix64(UInt64(i) &+ 0x5EED)) }
    return s
}

@Suite struct SketchTests {
    @Test func hyperLogLogCountsDistinctItemsWithinAFewPercent() {
        for n in [10, 1000, 100_000] {
            var h = HyperLogLog()
            for i in 0..<n {
                h.add(hash: mix64(UInt64(i)))
                h.add(hash: mix64(UInt64(i)))  // duplicates do not count
            }
            let error = abs(Double(h.estimate - n)) / Double(n)
            #expect(error < 0.08, "n=\(n) estimate=\(h.estimate)")
        }
    }

    @Test func hyperLogLogsMergeToTheUnion() {
        var a = HyperLogLog()
        var b = HyperLogLog()
        for i in 0..<5000 { a.add(hash: mix64(UInt64(i))) }
        for i in 2500..<7500 { b.add(hash: mix64(UInt64(i))) }
        a.merge(b)
        #expect(abs(a.estimate - 7500) < 500)
    }

    @Test func spaceSavingKeepsTheHeavyHittersInFixedSpace() {
        var s = SpaceSaving<Int>(capacity: 8)
        for round in 0..<1000 {
            s.add(1, weight: 5)
            s.add(2, weight: 3)
            s.add(10_000 + round)  // a stream of one-off keys
        }
        let top = s.top(2)
        #expect(top.map(\.key) == [1, 2])
        #expect(top[0].count >= 5000)
        #expect(s.top(100).count == 8)
    }
}

@Suite struct ModeControllerTests {
    var config: DetectionConfig {
        var c = DetectionConfig()
        c.minRate = 50
        c.calmUnderAttack = 10
        c.calmElevated = 10
        return c
    }

    /// Calm traffic teaches the baseline: 100 req/s from 100 users over a few pages.
    mutating func warmedUp() -> (ModeController, Int64) {
        var m = ModeController(config: config)
        var t: Int64 = 1000
        for _ in 0..<60 {
            #expect(m.observe(second(requests: 100, sources: 100, distinctTargets: 10), at: t) == nil)
            t += 1
        }
        #expect(abs(m.baseline - 100) < 1)
        return (m, t)
    }

    @Test mutating func cacheBustingFloodGoesUnderAttackWithinTheSustainTimeAndBackAfterCalm() {
        var (m, t) = warmedUp()
        var changes: [ModeChange] = []
        // S2: 5000 sources, random query strings, 20x the baseline.
        for _ in 0..<3 {
            if let c = m.observe(second(requests: 2000, sources: 1500, distinctTargets: 1900), at: t) { changes.append(c) }
            t += 1
        }
        #expect(changes.map(\.to) == [.underAttack])
        #expect(m.mode == .underAttack)
        #expect(changes.first?.reason.contains("distinct URLs") == true)
        let attackStart = t
        // The flood goes on while challenged: the mode holds (no flapping).
        for _ in 0..<30 {
            #expect(m.observe(second(requests: 2000, sources: 1500, distinctTargets: 1900, uncleared: 1900), at: t) == nil)
            t += 1
        }
        // It stops: down to elevated after the calm period, then normal.
        var downs: [(SiteMode, Int64)] = []
        for _ in 0..<30 {
            if let c = m.observe(second(requests: 100, sources: 100, distinctTargets: 10), at: t) { downs.append((c.to, t)) }
            t += 1
        }
        #expect(downs.map(\.0) == [.elevated, .normal])
        #expect(downs.last!.1 - (attackStart + 30) <= 25)
        // The attack did not leak into the baseline.
        #expect(m.baseline < 120)
    }

    @Test mutating func legitSurgeIsElevatedButNeverUnderAttack() {
        var (m, t) = warmedUp()
        // S8: ten times the users, same pages, cookies kept once handed out.
        var modes: Set<SiteMode> = []
        for i in 0..<60 {
            let uncleared = i < 3 ? 900 : 60  // first visits, then returning with the cookie
            _ = m.observe(second(requests: 1000, sources: 1000, distinctTargets: 20, cleared: 1000 - uncleared, uncleared: uncleared), at: t)
            modes.insert(m.mode)
            t += 1
        }
        #expect(modes.contains(.elevated))
        #expect(!modes.contains(.underAttack))
    }

    @Test mutating func floodWithoutCookiesGoesUnderAttackOnceCookiesWereHandedOut() {
        var (m, t) = warmedUp()
        // S5-like: every request from a new source, same URL, nobody returns a cookie.
        var seen: [SiteMode] = []
        for _ in 0..<8 {
            _ = m.observe(second(requests: 3000, sources: 3000, distinctTargets: 3, uncleared: 3000), at: t)
            seen.append(m.mode)
            t += 1
        }
        #expect(seen.first == .normal)
        #expect(seen.contains(.elevated))
        #expect(seen.last == .underAttack)
    }

    @Test mutating func heavySourcesOverTheirLimitsRaiseTheMode() {
        var (m, t) = warmedUp()
        for _ in 0..<2 { _ = m.observe(second(requests: 5000, sources: 5, distinctTargets: 1, limited: 4800), at: t); t += 1 }
        #expect(m.mode == .underAttack)
    }

    @Test mutating func cookieKeepingFloodEscalatesToProofOfWork() {
        var (m, t) = warmedUp()
        for _ in 0..<2 { _ = m.observe(second(requests: 3000, sources: 2000, distinctTargets: 2900), at: t); t += 1 }
        #expect(m.mode == .underAttack)
        #expect(m.tier == .cookie)
        var escalated: ModeChange?
        for _ in 0..<8 {
            // Bots now return the cookie: most requests pass the cookie check.
            if let c = m.observe(second(requests: 3000, sources: 2000, distinctTargets: 2900, cleared: 2800, uncleared: 200, clearedTargets: 2700), at: t) {
                escalated = c
            }
            t += 1
        }
        #expect(m.tier == .pow)
        #expect(escalated?.tier == .pow)
    }

    @Test mutating func aSurgeOfClearedPeopleIsNeverEscalated() {
        var (m, t) = warmedUp()
        _ = m.setOverride(.underAttack, at: t)
        // Under attack (say, the tail of a flood) when a surge of real users arrives: they pass
        // the cookie check and load the same few pages, saturating the origin.
        for _ in 0..<20 {
            _ = m.observe(second(requests: 1500, sources: 1000, distinctTargets: 30, cleared: 1400, uncleared: 100, saturated: true, clearedTargets: 25), at: t)
            t += 1
        }
        #expect(m.tier == .cookie)
    }

    @Test mutating func aLoginFloodIsSeenByItsShareOfPosts() {
        var (m, t) = warmedUp()
        for _ in 0..<2 { _ = m.observe(second(requests: 1500, sources: 1200, distinctTargets: 2, saturated: true, posts: 1450), at: t); t += 1 }
        #expect(m.mode == .underAttack)
    }

    @Test mutating func attackEvidenceGatheredWhileHotCarriesIntoElevated() {
        var (m, t) = warmedUp()
        // S11-like: the spray saturates the origin at once; the origin's refusals (the signal)
        // are counted from the next second on.
        var modes: [SiteMode] = []
        for i in 0..<4 {
            var s = second(requests: 500, sources: 480, distinctTargets: 3, saturated: true, posts: 200)
            if i > 0 {
                s.credentialAttempts = 400
                s.credentialFailures = 390
            }
            _ = m.observe(s, at: t)
            modes.append(m.mode)
            t += 1
        }
        // Hot for two seconds: elevated; the signal held for two seconds by then: under attack.
        #expect(modes == [.normal, .elevated, .underAttack, .underAttack])
    }

    @Test mutating func operatorOverrideWinsUntilCleared() {
        var (m, t) = warmedUp()
        let change = m.setOverride(.underAttack, at: t)
        #expect(change?.to == .underAttack && change?.manual == true)
        for _ in 0..<30 {
            _ = m.observe(second(requests: 100, sources: 100, distinctTargets: 10), at: t)
            t += 1
        }
        #expect(m.mode == .underAttack)
        #expect(m.setOverride(nil, at: t)?.to == .normal)
        #expect(m.mode == .normal)
    }

    @Test func extremeThresholdsAndClocksNeverTrap() {
        var extreme = config
        extreme.minRate = .infinity
        var m = ModeController(config: extreme)
        // A load line naming the baseline is built every second; an infinite floor must not trap it.
        #expect(m.observe(second(requests: 5000, sources: 5000, distinctTargets: 10, saturated: true), at: .min) == nil)
        #expect(m.observe(second(requests: 5000, sources: 5000, distinctTargets: 10, saturated: true), at: .max)?.to == .elevated)
        #expect(m.observe(second(requests: 5000, sources: 5000, distinctTargets: 10, uncleared: 5000, saturated: true), at: .min) == nil)
    }

    @Test func anOverrideCarriesTheReasonGivenForIt() {
        var m = ModeController(config: config)
        let restored = m.setOverride(.underAttack, at: 5, reason: "operator override restored from the state database")
        #expect(restored == ModeChange(from: .normal, to: .underAttack, tier: .cookie, at: 5, reason: "operator override restored from the state database", manual: true))
        #expect(m.setOverride(nil, at: 6)?.reason == "operator returned the site to automatic mode")
    }

    @Test func quietSiteNeverLeavesNormalBelowTheFloor() {
        var m = ModeController(config: config)
        for t in 0..<30 { _ = m.observe(second(requests: 40, sources: 40, distinctTargets: 40), at: Int64(t)) }
        #expect(m.mode == .normal)
    }
}

@Suite struct ReplayTests {
    @Test func nginxCombinedLinesParseWithTheirTimeZone() throws {
        let r = try #require(LogRecord.nginxCombined(#"203.0.113.9 - - [01/Jul/2026:12:00:05 +0200] "POST /login?x=1 HTTP/1.1" 429 12 "-" "curl/8.5""#))
        #expect(r.client == IPAddress("203.0.113.9"))
        #expect(r.time == 1_782_900_005)  // 10:00:05 UTC
        #expect(r.method == "POST" && r.target == "/login?x=1" && r.status == 429 && r.agent == "curl/8.5")
        #expect(LogRecord.nginxCombined("garbage") == nil)
        #expect(LogRecord.nginxCombined(#"203.0.113.9 - - [99/Foo/2026:12:00:05 +0200] "GET / HTTP/1.1" 200 1 "-" "-""#) == nil)
    }

    @Test func replayOfAQuietLogDoesNothing() {
        let records = (0..<300).map { LogRecord(time: 1000 + Int64($0 / 5), client: IPAddress(v4: 0xC000_0200 + UInt32($0 % 30)), method: "GET", target: "/", status: 200, agent: "Mozilla") }
        let report = Replay.run(records)
        #expect(report.events.isEmpty)
        #expect(report.requests == 300)
        #expect(report.secondsInMode[.underAttack] == nil)
    }
    /// Found by the `replay-log` fuzz target: a user name from `Authorization: Basic` may carry a
    /// bracketed date; the time is the bracket right before the request, and out-of-range dates
    /// are refused instead of overflowing the replay's clock.
    @Test func aClientWrittenUserNameCannotSetTheTimeOrCrashTheReplay() throws {
        let line = #"203.0.113.9 - [01/Jan/2300/00/00/00 +0000] [10/Oct/2026:13:55:36 +0300] "GET / HTTP/1.1" 401 0 "-" "x""#
        let r = try #require(LogRecord.nginxCombined(Substring(line)))
        #expect(r.time == LogRecord.unixSeconds(year: 2026, month: 10, day: 10, hour: 10, minute: 55, second: 36))
        #expect(LogRecord.nginxCombined(#"203.0.113.9 - - [01/Jan/99999999999999999/00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-""#) == nil)
        #expect(LogRecord.nginxCombined(#"203.0.113.9 - - [01/Jan/2300:25:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-""#) == nil)
        // Records far apart (or far outside any log's range) cost calm windows, not every second between.
        let a = LogRecord(time: 1_000, client: IPAddress(v4: 1), method: "GET", target: "/", status: 200, agent: "")
        let b = LogRecord(time: 8_000_000_000, client: IPAddress(v4: 2), method: "GET", target: "/", status: 200, agent: "")
        let c = LogRecord(time: Int64.max - 10, client: IPAddress(v4: 3), method: "GET", target: "/", status: 200, agent: "")
        let report = Replay.run([a, b, c])
        #expect(report.requests == 2)
        let walked: Int = report.secondsInMode.values.reduce(0, +)
        let span: Int = 8_000_000_000 - 1_000 + 1 + 40  // first to last record, plus the calm minute after
        #expect(walked == span)
    }
}
