import NIOHTTP1
import Testing

@testable import RampartCore

@Suite struct TokenBucketTableTests {
    let second: Int64 = 1_000_000_000

    @Test func burstThenRateThenRefill() {
        var t = TokenBucketTable(capacity: 64, ratePerSecond: 2, burst: 3, seed: 7)
        let a = IPAddress("127.0.0.9")!
        for _ in 0..<3 { #expect(t.take(a, now: 0) == .allowed) }
        #expect(t.take(a, now: 0) == .limited(retryAfterSeconds: 1))
        #expect(t.take(a, now: second / 2) == .allowed)  // one token back after 0.5 s at 2/s
        #expect(t.take(a, now: second / 2) == .limited(retryAfterSeconds: 1))
        #expect(t.take(a, now: 10 * second) == .allowed)  // refilled, capped at the burst
        #expect(t.take(a, now: 10 * second) == .allowed)
        #expect(t.take(a, now: 10 * second) == .allowed)
        #expect(t.take(a, now: 10 * second) != .allowed)
        // Another key has its own bucket.
        #expect(t.take(IPAddress("127.0.0.10")!, now: 10 * second) == .allowed)
    }

    @Test func extremeRatesAndBurstsSaturateInsteadOfTrapping() {
        let a = IPAddress("127.0.0.9")!
        // 1e-20/s: the wait for the next token (1e20 s) is announced as one day, not converted whole.
        var slow = TokenBucketTable(capacity: 64, ratePerSecond: 1e-20, burst: 1, seed: 7)
        #expect(slow.take(a, now: 0) == .allowed)
        #expect(slow.take(a, now: second) == .limited(retryAfterSeconds: ValueBounds.maxRetryAfterSeconds))
        // Infinite, NaN and negative values are clamped: every decision is still a plain answer.
        var unlimited = TokenBucketTable(capacity: 64, ratePerSecond: .infinity, burst: .infinity, seed: 7)
        #expect((0..<1000).allSatisfy { unlimited.take(a, now: Int64($0)) == .allowed })
        var nan = TokenBucketTable(capacity: 64, ratePerSecond: .nan, burst: .nan, seed: 7)
        #expect(nan.take(a, now: 0) == .allowed)
        #expect(nan.take(a, now: 0) == .limited(retryAfterSeconds: 60))
        var negative = TokenBucketTable(capacity: 64, ratePerSecond: -5, burst: -5, seed: 7)
        #expect(negative.burst == 1 && negative.ratePerNanosecond == 0)
        #expect(negative.take(a, now: 0) == .allowed)
        // A clock that jumps from one end of Int64 to the other.
        var jumpy = TokenBucketTable(capacity: 64, ratePerSecond: 1, burst: 1, seed: 7)
        #expect(jumpy.take(a, now: .min) == .allowed)
        #expect(jumpy.take(a, now: .max) == .allowed)
        #expect(jumpy.take(a, now: .min) == .limited(retryAfterSeconds: 1))
    }

    @Test func aSiteLimiterBuiltInCodeWithExtremeRulesNeverTraps() {
        let tiny = RateLimitRule(name: "tiny", ratePerSecond: 1e-20, burst: 1)
        let huge = RateLimitRule(name: "huge", ratePerSecond: .greatestFiniteMagnitude, burst: .greatestFiniteMagnitude)
        var limiter = SiteRateLimiter(rules: [huge, tiny], loops: 4)
        let client = IPAddress("192.0.2.1")!
        #expect(limiter.check(client: client, method: .GET, target: "/", now: 0) == .allowed(shadowHits: []))
        #expect(limiter.check(client: client, method: .GET, target: "/", now: 1) == .limited(rule: "tiny", action: .reject, retryAfterSeconds: 86_400))
    }

    @Test func memoryIsFixedAndHeavySourcesStayTracked() {
        // 1,000,000 one-off addresses interleaved with 100 heavy sources, through a 4,096-slot table.
        var t = TokenBucketTable(capacity: 4096, ratePerSecond: 20, burst: 100, seed: 42)
        let heavy = (0..<100).map { IPAddress(v4: 0x0A00_0000 | UInt32($0)) }
        var limited = [Int](repeating: 0, count: heavy.count)
        var now: Int64 = 0
        var oneOff: UInt32 = 0
        for round in 0..<500 {
            for (i, h) in heavy.enumerated() {
                now += 1000
                if t.take(h, now: now) != .allowed { limited[i] += 1 }
            }
            for _ in 0..<2000 {
                now += 200
                oneOff += 1
                _ = t.take(IPAddress(v4: 0x7F80_0000 | oneOff), now: now)
            }
            _ = round
        }
        #expect(t.capacity == 4096)
        #expect(t.trackedKeys <= 4096)
        // Each heavy source sent 500 requests in 0.25 s of table time: at most ~105 may pass.
        #expect(oneOff == 1_000_000)
        #expect(limited.allSatisfy { $0 >= 390 }, "a heavy source escaped: \(limited.min()!)")
    }
}

@Suite struct SiteRateLimiterTests {
    @Test func rulesMatchMethodAndPathAndSubnet() {
        var login = RateLimitRule(name: "login", ratePerSecond: 0, burst: 2)
        login.methods = ["POST"]
        login.pathPrefix = "/login"
        var subnet = RateLimitRule(name: "subnet", ratePerSecond: 0, burst: 3)
        subnet.key = .subnet
        var limiter = SiteRateLimiter(rules: [login, subnet], loops: 1)
        let a = IPAddress("192.0.2.1")!
        let b = IPAddress("192.0.2.2")!
        #expect(limiter.check(client: a, method: .POST, target: "/login", now: 0) == .allowed(shadowHits: []))
        #expect(limiter.check(client: a, method: .POST, target: "/login?x", now: 0) == .allowed(shadowHits: []))
        #expect(limiter.check(client: a, method: .POST, target: "/login", now: 0) == .limited(rule: "login", action: .reject, retryAfterSeconds: 60))
        // GET is not covered by the login rule; the subnet rule has one of its three tokens left for
        // 192.0.2.0/24 (the refused POST stopped at the login rule and took none).
        #expect(limiter.check(client: b, method: .GET, target: "/", now: 0) == .allowed(shadowHits: []))
        #expect(limiter.check(client: b, method: .GET, target: "/", now: 0) == .limited(rule: "subnet", action: .reject, retryAfterSeconds: 60))
        #expect(limiter.check(client: IPAddress("192.0.3.1")!, method: .GET, target: "/", now: 0) == .allowed(shadowHits: []))
    }

    @Test func shadowRulesCountButDoNotBlock() {
        var rule = RateLimitRule(name: "watch", ratePerSecond: 0, burst: 1)
        rule.shadow = true
        var limiter = SiteRateLimiter(rules: [rule], loops: 1)
        let a = IPAddress("192.0.2.1")!
        #expect(limiter.check(client: a, method: .GET, target: "/", now: 0) == .allowed(shadowHits: []))
        #expect(limiter.check(client: a, method: .GET, target: "/", now: 0) == .allowed(shadowHits: ["watch"]))
    }

    @Test func apiKeysAreLimitedPerKeyNotPerAddress() {
        let perIP = RateLimitRule(name: "ip", ratePerSecond: 0, burst: 2)
        var perKey = RateLimitRule(name: "key", ratePerSecond: 0, burst: 3)
        perKey.key = .apiKey
        var limiter = SiteRateLimiter(rules: [perIP, perKey], loops: 1)
        let office = IPAddress("198.51.100.4")!
        let known = PresentedAPIKey.find(in: ["Authorization": "Bearer tax-software-key-0001"], configured: ["tax-software-key-0001"])
        #expect(known == PresentedAPIKey(value: "tax-software-key-0001", configured: true))
        // A configured key skips the per-address rule: three requests pass, the fourth hits its own bucket.
        for _ in 0..<3 { #expect(limiter.check(client: office, method: .GET, target: "/api/", apiKey: known, now: 0) == .allowed(shadowHits: [])) }
        #expect(limiter.check(client: office, method: .GET, target: "/api/", apiKey: known, now: 0) == .limited(rule: "key", action: .reject, retryAfterSeconds: 60))
        // A made-up key earns nothing: the address rule applies (and the key's own bucket too).
        let forged = PresentedAPIKey.find(in: ["X-API-Key": "guess"], configured: ["tax-software-key-0001"])
        #expect(forged?.configured == false)
        #expect(limiter.check(client: office, method: .GET, target: "/", apiKey: forged, now: 0) == .allowed(shadowHits: []))
        #expect(limiter.check(client: office, method: .GET, target: "/", apiKey: forged, now: 0) == .allowed(shadowHits: []))
        #expect(limiter.check(client: office, method: .GET, target: "/", apiKey: forged, now: 0) == .limited(rule: "ip", action: .reject, retryAfterSeconds: 60))
        #expect(PresentedAPIKey.find(in: ["Authorization": "Basic abc"], configured: []) == nil)
    }

    @Test func ratesAreSplitOverEventLoopsButNotTheBurst() {
        let rule = RateLimitRule(name: "r", ratePerSecond: 10, burst: 10)
        var limiter = SiteRateLimiter(rules: [rule], loops: 2)
        let a = IPAddress("192.0.2.1")!
        func allowed(_ n: Int, at now: Int64) -> Int {
            var ok = 0
            for _ in 0..<n where limiter.check(client: a, method: .GET, target: "/", now: now) == .allowed(shadowHits: []) { ok += 1 }
            return ok
        }
        // The whole burst on one loop (one HTTP/2 connection's page view)...
        #expect(allowed(20, at: 0) == 10)
        // ...then this loop's half of the rate: 5 a second.
        #expect(allowed(20, at: 1_000_000_000) == 5)
    }

    @Test func rateSyntaxAndConfig() throws {
        #expect(ValueParsing.rate("20/s") == 20)
        #expect(ValueParsing.rate("300/m") == 5)
        #expect(ValueParsing.rate("3600/h") == 1)
        #expect(ValueParsing.rate("7") == 7)
        #expect(ValueParsing.rate("fast") == nil)
        let yaml = """
            listeners: [{address: 127.0.0.1:8080}]
            sites:
              - name: www
                hosts: [example.org]
                origins: [127.0.0.1:9000]
                rate_limits:
                  - {name: login, rate: 5/m, burst: 5, methods: [post], path: /login, action: tarpit}
                  - {name: net, key: subnet, rate: 100/s, subnet_v4: 16, shadow: true}
              - name: api
                hosts: [api.example.org]
                origins: [127.0.0.1:9001]
            """
        let c = try ConfigLoader.load(yaml: yaml, file: "r.yaml")
        let rules = c.sites[0].rateLimits
        #expect(rules.count == 2)
        #expect(rules[0].methods == ["POST"])
        #expect(rules[0].action == .tarpit)
        #expect(abs(rules[0].ratePerSecond - 5.0 / 60) < 1e-9)
        #expect(rules[1].key == .subnet && rules[1].shadow && rules[1].subnetV4 == 16 && rules[1].burst == 100)
        #expect(c.sites[1].rateLimits == RateLimitRule.defaults)
        do {
            _ = try ConfigLoader.load(yaml: yaml.replacingOccurrences(of: "rate: 5/m", with: "rate: lots"), file: "r.yaml")
            Issue.record("accepted a bad rate")
        } catch {
            #expect(error.issues.contains { $0.key == "sites[0].rate_limits[0].rate" && $0.line == 7 })
        }
    }
}
