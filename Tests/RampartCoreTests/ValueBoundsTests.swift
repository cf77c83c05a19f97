import NIOCore
import Testing

@testable import RampartCore

/// Every duration, rate, size and count key is range-checked by the loader (so `rampart check`
/// refuses what would later trap), and the saturating conversions behind the guards never trap.
@Suite struct ValueBoundsTests {
    /// A valid config with `top` added at the top level and `site` inside the one site.
    static func yaml(top: String = "", site: String = "") -> String {
        """
        listeners: [{address: 127.0.0.1:8080}]
        \(top)
        sites:
          - name: www
            hosts: [example.org]
            origins: [127.0.0.1:9000]
            \(site)
        """
    }

    /// The issues `yaml` is refused with (empty when it loads).
    static func issues(_ yaml: String) -> [ConfigIssue] {
        do {
            _ = try ConfigLoader.load(yaml: yaml, file: "bounds.yaml")
            return []
        } catch {
            return error.issues
        }
    }

    @Test func theThreeConfigsOfTheReviewAreRefusedWithLineAndKey() {
        let ban = Self.issues(Self.yaml(top: "bans: {duration: 9223372036s}"))
        #expect(ban.map(\.key) == ["bans.duration"] && ban.first?.line == 2, "\(ban)")
        let rate = Self.issues(Self.yaml(site: "rate_limits: [{name: r, rate: 1e-20/s}]"))
        #expect(rate.map(\.key) == ["sites[0].rate_limits[0].rate"] && rate.first?.line == 7, "\(rate)")
        let body = Self.issues(Self.yaml(top: "timeouts: {body_min_rate: 4GiB}"))
        #expect(body.map(\.key) == ["timeouts.body_min_rate"] && body.first?.line == 2, "\(body)")
        #expect(body.first?.description.hasPrefix("bounds.yaml:2:") == true)
        #expect(body.first?.message == "must be between 0 bytes and 100MiB", "\(body)")
    }

    /// One out-of-range value per key: `(top-level snippet, site snippet, the key named)`.
    static let outOfRange: [(String, String, String)] = [
        ("bans: {max_duration: 721h}", "", "bans.max_duration"),
        ("bans: {duration: 0}", "", "bans.duration"),
        ("bans: {duration: 2h}", "", "bans.duration"),  // longer than the default max_duration (1h)
        ("bans: {strikes_per_second: 2000000}", "", "bans.strikes_per_second"),
        ("bans: {strikes_per_second: .inf}", "", "bans.strikes_per_second"),
        ("timeouts: {header: 721h}", "", "timeouts.header"),
        ("timeouts: {idle: 0}", "", "timeouts.idle"),
        ("timeouts: {send: 9223372036s}", "", "timeouts.send"),
        ("timeouts: {body: 721h}", "", "timeouts.body"),
        ("timeouts: {origin_connect: 0.0001s}", "", "timeouts.origin_connect"),
        ("timeouts: {origin_response: 721h}", "", "timeouts.origin_response"),
        ("timeouts: {drain: 721h}", "", "timeouts.drain"),
        ("limits: {max_header_bytes: 2MiB}", "", "limits.max_header_bytes"),
        ("limits: {max_uri_bytes: 2MiB}", "", "limits.max_uri_bytes"),
        ("limits: {max_body_bytes: 65GiB}", "", "limits.max_body_bytes"),
        ("limits: {max_requests_per_connection: 100000000}", "", "limits.max_requests_per_connection"),
        ("known_good: {min_age: 721h}", "", "known_good.min_age"),
        ("known_good: {lifetime: 0}", "", "known_good.lifetime"),
        ("", "rate_limits: [{name: r, rate: 0/s}]", "sites[0].rate_limits[0].rate"),
        ("", "rate_limits: [{name: r, rate: 2000000/s}]", "sites[0].rate_limits[0].rate"),
        ("", "detection: {min_rate: 0/s}", "sites[0].detection.min_rate"),
        ("", "detection: {sustain: 721h}", "sites[0].detection.sustain"),
        ("", "detection: {baseline_half_life: 721h}", "sites[0].detection.baseline_half_life"),
        ("", "challenge: {clearance_rate: 1e-20/s}", "sites[0].challenge.clearance_rate"),
        ("", "challenge: {wait_rate: 10000000/s}", "sites[0].challenge.wait_rate"),
        ("", "challenge: {clearance_ttl: 721h}", "sites[0].challenge.clearance_ttl"),
        ("", "cache: {micro_ttl: 721h}", "sites[0].cache.micro_ttl"),
        ("", "cache: {stale_for: 9223372036s}", "sites[0].cache.stale_for"),
        ("", "cache: {max_bytes: 65GiB}", "sites[0].cache.max_bytes"),
        ("", "cache: {max_object_bytes: 2GiB}", "sites[0].cache.max_object_bytes"),
        ("", "health_check: {interval: 721h}", "sites[0].health_check.interval"),
        ("", "health_check: {timeout: 0}", "sites[0].health_check.timeout"),
        ("", "passive_health: {eject_for: 721h}", "sites[0].passive_health.eject_for"),
        ("", "timeouts: {body_min_rate: 101MiB}", "sites[0].timeouts.body_min_rate"),
        ("", "limits: {max_body_bytes: 65GiB}", "sites[0].limits.max_body_bytes"),
    ]

    @Test(arguments: outOfRange)
    func everyKeyIsRangeChecked(top: String, site: String, key: String) {
        let found = Self.issues(Self.yaml(top: top, site: site))
        #expect(found.map(\.key) == [key], "\(found)")
        #expect(found.allSatisfy { $0.line > 0 }, "\(found)")
    }

    @Test func theEdgesOfEachRangeAreAccepted() throws {
        let top = """
            bans: {duration: 720h, max_duration: 720h, strikes_per_second: 0}
            timeouts: {header: 1ms, idle: 720h, body_min_rate: 100MiB}
            limits: {max_header_bytes: 1MiB, max_uri_bytes: 1MiB, max_body_bytes: 64GiB, max_requests_per_connection: 10000000}
            known_good: {min_age: 0, lifetime: 720h}
            """
        let site = """
            rate_limits: [{name: slow, rate: 0.0417/h}, {name: fast, rate: 1000000/s}]
                cache: {micro_ttl: 0, max_bytes: 64GiB, max_object_bytes: 1GiB}
            """
        let c = try ConfigLoader.load(yaml: Self.yaml(top: top, site: site), file: "edges.yaml")
        #expect(c.bans.duration == .hours(720) && c.bans.strikesPerSecond == 0)
        #expect(c.listeners[0].limits.headerTimeout == .milliseconds(1))
        #expect(c.sites[0].limits.bodyMinRate == 100 << 20)
        #expect(c.sites[0].rateLimits.map(\.ratePerSecond) == [0.0417 / 3600, 1_000_000])
        #expect(c.sites[0].cache.maxBytes == 1 << 36)
    }

    @Test func saturatingArithmetic() {
        #expect(Int64.saturatingSum(.max, 1) == .max)
        #expect(Int64.saturatingSum(.min, -1) == .min)
        #expect(Int64.saturatingSum(40, 2) == 42)
        #expect(Int64.saturatingDifference(.min, 1) == .min)
        #expect(Int64.saturatingDifference(.max, -1) == .max)
        #expect(Int64.saturatingProduct(.max / 2, 3) == .max)
        #expect(Int64.saturatingProduct(.max / 2, -3) == .min)
        #expect(Int64.saturatingProduct(-6, 7) == -42)
        #expect(Int64(saturating: 1e20) == .max)
        #expect(Int64(saturating: -1e20) == .min)
        #expect(Int64(saturating: 9.223_372_036_854_775_807e18) == .max)
        #expect(Int64(saturating: .infinity) == .max)
        #expect(Int64(saturating: .nan) == 0)
        #expect(Int64(saturating: -2.9) == -2)
        #expect(Int(saturating: 1e300) == .max)
    }

    @Test func boundsAreDescribedAsTheConfigSpellsThem() {
        #expect(ValueBounds.describe(.milliseconds(1)) == "1ms")
        #expect(ValueBounds.describe(.zero) == "0s")
        #expect(ValueBounds.describe(.seconds(90)) == "90s")
        #expect(ValueBounds.describe(.minutes(2)) == "2m")
        #expect(ValueBounds.describe(ValueBounds.maxDuration) == "720h (30 days)")
        #expect(ValueParsing.describe(bytes: 0) == "0 bytes")
        #expect(ValueParsing.describe(bytes: 256) == "256 bytes")
        #expect(ValueParsing.describe(bytes: 1 << 36) == "64GiB")
    }
}
