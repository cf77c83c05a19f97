import NIOCore

/// The ranges the config loader accepts for durations, rates, sizes and counts, and the saturating
/// conversions the guards use where such a value meets a fixed-width integer.
///
/// Two halves of one rule, "no value can trap": the loader refuses anything outside these ranges
/// (`rampart check` names file, line and key), and the guards clamp instead of trapping, so a config
/// built in code with extreme values cannot crash the gateway on the request path either. The
/// ranges are documented in `docs/configuration.md` ("Value syntax").
package enum ValueBounds {
    /// Shortest duration a key accepts unless it allows zero: 1 millisecond.
    package static let minDuration: TimeAmount = .milliseconds(1)
    /// Longest duration any key accepts: 30 days.
    package static let maxDuration: TimeAmount = .hours(24 * 30)
    /// Slowest rate a key accepts, in events per second: one a day. Its reciprocal (a Retry-After of
    /// one day) fits every integer it is converted to.
    package static let minRate: Double = 1.0 / 86_400
    /// Fastest rate a key accepts, in events per second.
    package static let maxRate: Double = 1_000_000
    /// Largest `max_header_bytes` and `max_uri_bytes`: 1 MiB.
    package static let maxHeaderBytes = 1 << 20
    /// Largest `max_body_bytes`: 64 GiB.
    package static let maxBodyBytes = 1 << 36
    /// Largest `body_min_rate`, in bytes per second: 100 MiB/s (a slowest acceptable upload
    /// above that is no slow-POST defence but a refusal of every upload).
    package static let maxBodyMinRate = 100 << 20
    /// Largest `cache.max_bytes`: 64 GiB.
    package static let maxCacheBytes = 1 << 36
    /// Largest `cache.max_object_bytes`: 1 GiB.
    package static let maxCacheObjectBytes = 1 << 30
    /// Longest Retry-After a rate limit announces, in seconds (one day, the reciprocal of ``minRate``).
    package static let maxRetryAfterSeconds = 86_400

    /// `amount` as the config would spell it: `250ms`, `10s`, `2m`, `720h (30 days)`.
    package static func describe(_ amount: TimeAmount) -> String {
        let ns = amount.nanoseconds
        let hour: Int64 = 3_600_000_000_000
        if ns != 0, ns % hour == 0 {
            let hours = ns / hour
            return hours % 24 == 0 && hours >= 48 ? "\(hours)h (\(hours / 24) days)" : "\(hours)h"
        }
        if ns != 0, ns % 60_000_000_000 == 0 { return "\(ns / 60_000_000_000)m" }
        if ns % 1_000_000_000 == 0 { return "\(ns / 1_000_000_000)s" }
        return "\(ns / 1_000_000)ms"
    }
}

extension Int64 {
    /// `a + b`, clamped to `Int64.min...Int64.max` instead of trapping on overflow.
    package static func saturatingSum(_ a: Int64, _ b: Int64) -> Int64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        guard overflow else { return sum }
        return b > 0 ? .max : .min
    }

    /// `a - b`, clamped to `Int64.min...Int64.max` instead of trapping on overflow.
    package static func saturatingDifference(_ a: Int64, _ b: Int64) -> Int64 {
        let (difference, overflow) = a.subtractingReportingOverflow(b)
        guard overflow else { return difference }
        return b < 0 ? .max : .min
    }

    /// `a * b`, clamped to `Int64.min...Int64.max` instead of trapping on overflow.
    package static func saturatingProduct(_ a: Int64, _ b: Int64) -> Int64 {
        let (product, overflow) = a.multipliedReportingOverflow(by: b)
        guard overflow else { return product }
        return (a < 0) == (b < 0) ? .max : .min
    }

    /// `value` rounded toward zero and clamped to `Int64`'s range; NaN becomes 0. Unlike
    /// `Int64(value)`, never traps.
    package init(saturating value: Double) {
        if value.isNaN {
            self = 0
        } else if value >= 9.223_372_036_854_775_807e18 {
            self = .max
        } else if value <= -9.223_372_036_854_775_808e18 {
            self = .min
        } else {
            self = Int64(value)
        }
    }
}

extension Int {
    /// `value` rounded toward zero and clamped to `Int`'s range; NaN becomes 0. Unlike `Int(value)`,
    /// never traps.
    package init(saturating value: Double) {
        self = Int(Int64(saturating: value))
    }
}
