import Benchmark
import NIOHTTP1
import RampartCore

import Foundation

/// Resident memory of this process, megabytes (from /proc/self/status).
func residentMB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return (line.split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? 0) / 1024
    }
    return 0
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .mallocCountTotal, .peakMemoryResident],
        scalingFactor: .mega,
        maxDuration: .seconds(3)
    )

    Benchmark("TokenBucketTable.take, 100k distinct addresses") { benchmark in
        var table = TokenBucketTable(capacity: 65_536, ratePerSecond: 20, burst: 100)
        var now: Int64 = 0
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            now += 1000
            blackHole(table.take(IPAddress(v4: 0x7F00_0000 | UInt32(i % 100_000)), now: now))
        }
    }

    Benchmark("SiteRateLimiter.check, default rules") { benchmark in
        var limiter = SiteRateLimiter(rules: RateLimitRule.defaults, loops: 2)
        var now: Int64 = 0
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            now += 1000
            blackHole(limiter.check(client: IPAddress(v4: 0x7F00_0000 | UInt32(i % 50_000)), method: .GET, target: "/", now: now))
        }
    }

    // The behaviour score's work for one GET: classify the request, fingerprint its headers and
    // record it for the client, its /24 and its fingerprint (2,000 bots, one per /24).
    Benchmark("BehaviourScore.observe + classify + fingerprint, 2,000 bots") { benchmark in
        var score = BehaviourScore()
        let headers: HTTPHeaders = ["Host": "www.example.org", "User-Agent": "Mozilla/5.0 (flood)", "Accept-Encoding": "gzip"]
        let target: Substring = "/article/4711"
        var now: Int64 = 0
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            now += 500_000
            let kind = RequestKind.classify(path: target, query: nil, referer: headers.first(name: "referer"), host: "www.example.org")
            let fingerprint = RequestFingerprint.of(headers, httpMajor: 1, ja4: nil)
            let client = IPAddress(v4: 0x0A00_0001 &+ UInt32(i % 2000) << 8)
            blackHole(score.observe(kind, client: client, clearance: nil, fingerprint: fingerprint, now: now))
        }
    }

    // The request path's decision and rewrite for a typical browser GET: framing checks (with the
    // target normalised) and the forwarded head, as the client handler runs them per request.
    Benchmark("RequestChecks.framing + forwardedHead, browser GET") { benchmark in
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/news/2026/11/article-4711?utm_source=x", headers: [
            "Host": "www.example.org", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
            "Accept": "text/html,application/xhtml+xml", "Accept-Language": "lt,en;q=0.5", "Accept-Encoding": "gzip, deflate, br",
            "Cookie": "sessionid=0123456789abcdef; theme=dark", "Connection": "keep-alive",
        ])
        let hop = ForwardingHeaders.Hop(peer: "203.0.113.7", client: "203.0.113.7", peerIsTrusted: false, scheme: "https", requestID: "00000000deadbeef", version: .http1_1)
        let policy = RequestHeaderPolicy()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            guard case .success(let accepted) = RequestChecks.framing(head) else { fatalError("refused") }
            blackHole(ForwardingHeaders.forwardedHead(head, accepted: accepted, hop: hop, fallbackHost: "", policy: policy))
        }
    }

    Benchmark("RequestTarget.normalise, dot segments and escapes") { benchmark in
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(RequestTarget.normalise("/api/../news//2026/%7Eeditor/./article?q=1"))
        }
    }

    Benchmark("KnownGoodTable.recordSuccess + contains") { benchmark in
        var table = KnownGoodTable()
        var now: Int64 = 0
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            now += 1000
            let ip = IPAddress(v4: 0x0A00_0000 | UInt32(i % 200_000))
            table.recordSuccess(ip, now: now)
            blackHole(table.contains(ip, now: now))
        }
    }

    // The memory target: 1,000,000 distinct source addresses in one minute of (simulated)
    // time through the default per-IP and per-subnet limits, with 100 heavy sources mixed in.
    // Prints resident memory and how many heavy sources were caught.
    Benchmark(
        "1M distinct addresses in a minute, default limits",
        configuration: .init(metrics: [.peakMemoryResident, .wallClock], scalingFactor: .one, maxDuration: .seconds(60), maxIterations: 1)
    ) { _ in
        var limiter = SiteRateLimiter(rules: RateLimitRule.defaults, loops: 1)
        let heavy = (0..<100).map { IPAddress(v4: 0x0B00_0000 | UInt32($0) << 8 | 1) }
        var caught = Set<Int>()
        let step: Int64 = 60_000_000_000 / 1_100_000
        var now: Int64 = 0
        var n: UInt32 = 0
        for round in 0..<10_000 {
            for _ in 0..<100 {
                n += 1
                now += step
                // Distinct addresses spread over /24s, as a botnet's are.
                blackHole(limiter.check(client: IPAddress(v4: 0x4000_0000 &+ n &* 257), method: .GET, target: "/", now: now))
            }
            let h = round % 100
            now += step
            if case .limited = limiter.check(client: heavy[h], method: .GET, target: "/", now: now) { caught.insert(h) }
            // Each heavy source also bursts.
            for _ in 0..<20 {
                if case .limited = limiter.check(client: heavy[h], method: .GET, target: "/", now: now) { caught.insert(h) }
            }
        }
        // Written to stderr: the benchmark tool keeps stdout for its tables.
        FileHandle.standardError.write(Data("1M benchmark: distinct addresses \(n), heavy sources caught \(caught.count)/100, resident \(Int(residentMB())) MB\n".utf8))
    }

    // Country lookups (issue 17): the Tor ranges Debian ships (`tor-geoipdb`), by binary search,
    // and the per-loop cache in front of them. Skipped when the package is not installed.
    if let table = try? TorGeoIPTable.load(v4Path: "/usr/share/tor/geoip", v6Path: "/usr/share/tor/geoip6") {
        Benchmark("TorGeoIPTable.country, random IPv4 (uncached)") { benchmark in
            var x: UInt32 = 0x9E37_79B9
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                x = x &* 1_664_525 &+ 1_013_904_223
                blackHole(table.country(IPAddress(v4: x)))
            }
        }
        Benchmark("GeoLookupCache.lookup, 1,000 hot addresses") { benchmark in
            var cache = GeoLookupCache(slots: 4096)
            benchmark.startMeasurement()
            for i in benchmark.scaledIterations {
                blackHole(cache.lookup(IPAddress(v4: 0x5000_0000 &+ UInt32(i % 1000) &* 4099)) { GeoInfo(country: table.country($0)) })
            }
        }
    }
}
