import Testing

@testable import RampartCore

/// The adaptive origin limit on synthetic origins, with time passed in: a simulated origin with a
/// fixed number of workers answers in `service` while at most `workers` requests are in, and
/// queues the rest (its latency grows with the queue), answering 503 past a short queue.
@Suite struct AdaptiveConcurrencyTests {
    static let ms: Int64 = 1_000_000

    /// Drives `limiter` against an origin of `workers` workers (service time `service` ms, queue of
    /// `queue` more, 503 beyond) with `offered` requests always wanting in, for `seconds`. Returns
    /// the limit at the end and the 503s seen in the last half.
    static func drive(
        _ limiter: inout AdaptiveConcurrency, workers: Int, queue: Int, service: Int64 = 20, offered: Int = 200, seconds: Int = 30, start: Int64 = 0
    ) -> (limit: Int, lateOverloads: Int) {
        var now = start
        var lateOverloads = 0
        let end = start + Int64(seconds) * 1000 * ms
        while now < end {
            // Each round, as many requests as the limit lets in go to the origin at once.
            let n = min(offered, limiter.currentLimit)
            limiter.started(inFlight: n)
            let served = min(n, workers + queue)
            // With n in at once, the last of them waits for ceil(n / workers) service times.
            let rounds = Int64((min(n, workers + queue) + workers - 1) / workers)
            let latency = rounds * service * ms
            for i in 0..<n {
                let overloaded = i >= served
                if overloaded, now > start + (end - start) / 2 { lateOverloads += 1 }
                limiter.record(latency: overloaded ? ms : latency, overloaded: overloaded, now: now + latency)
            }
            now += latency
        }
        return (limiter.currentLimit, lateOverloads)
    }

    static func config(max: Int = 128) -> AdaptiveConcurrency.Configuration {
        var c = AdaptiveConcurrency.Configuration()
        c.maximum = max
        return c
    }

    @Test func aSmallOriginIsHeldNearItsKneeWithoutOverloads() {
        // 8 workers and a queue of 8: the cap of 128 would overflow it at once.
        var limiter = AdaptiveConcurrency(configuration: Self.config(), now: 0)
        let (limit, late) = Self.drive(&limiter, workers: 8, queue: 8)
        #expect(limit >= 6, "limit \(limit) leaves workers idle")
        #expect(limit <= 12, "limit \(limit) is past the origin's knee")
        #expect(late == 0, "\(late) overloaded answers in the second half")
        #expect(limiter.baseline == 20 * Self.ms)
    }

    @Test func aLargeOriginReachesTheConfiguredCapWithinSeconds() {
        var limiter = AdaptiveConcurrency(configuration: Self.config(max: 64), now: 0)
        let (limit, late) = Self.drive(&limiter, workers: 200, queue: 0, seconds: 3)
        #expect(limit == 64)
        #expect(late == 0)
    }

    @Test func theLimitGrowsBackWhenTheOriginRecovers() {
        var limiter = AdaptiveConcurrency(configuration: Self.config(), now: 0)
        _ = Self.drive(&limiter, workers: 4, queue: 2, seconds: 20)
        let low = limiter.currentLimit
        #expect(low <= 8)
        // The origin scales out to 64 workers.
        let (after, _) = Self.drive(&limiter, workers: 64, queue: 16, seconds: 60, start: 20_000 * Self.ms)
        #expect(after >= 48, "limit stayed at \(after) after the origin grew")
    }

    @Test func overloadedAnswersCutTheLimitAndItNeverLeavesItsBounds() {
        var c = Self.config(max: 40)
        c.minimum = 3
        c.initial = 40
        var limiter = AdaptiveConcurrency(configuration: c, now: 0)
        #expect(limiter.currentLimit == 40)
        var now: Int64 = 0
        for _ in 0..<50 {
            now += 300 * Self.ms
            limiter.record(latency: 5 * Self.ms, overloaded: true, now: now)
        }
        #expect(limiter.currentLimit == 3)
        // A window with no answer at all closes on the next one; a quiet origin at low load does not grow it.
        for _ in 0..<20 {
            now += 300 * Self.ms
            limiter.started(inFlight: 1)
            limiter.record(latency: 5 * Self.ms, overloaded: false, now: now)
        }
        #expect(limiter.currentLimit == 3)
        for _ in 0..<400 {
            now += 300 * Self.ms
            limiter.started(inFlight: limiter.currentLimit)
            limiter.record(latency: 5 * Self.ms, overloaded: false, now: now)
        }
        #expect(limiter.currentLimit == 40)
    }

    @Test func latencyPastTheToleranceShrinksTheLimitByTheGradient() {
        var c = Self.config(max: 100)
        c.initial = 100
        var limiter = AdaptiveConcurrency(configuration: c, now: 0)
        var now: Int64 = 0
        // Baseline 10 ms.
        now += 300 * Self.ms
        limiter.record(latency: 10 * Self.ms, overloaded: false, now: now)
        #expect(limiter.currentLimit == 100)
        // 30 ms against 10 ms x 1.5 + 5 ms: the limit scales by 20/30.
        now += 300 * Self.ms
        limiter.record(latency: 30 * Self.ms, overloaded: false, now: now)
        #expect(limiter.currentLimit == 66)
        // Far past it: at most halved per window.
        now += 300 * Self.ms
        limiter.record(latency: 500 * Self.ms, overloaded: false, now: now)
        #expect(limiter.currentLimit == 33)
    }
}
