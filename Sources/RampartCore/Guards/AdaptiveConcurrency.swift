/// How many requests an origin can serve at once, learned from its answers: the limit follows the
/// origin's knee, so the excess waits in Rampart's priority queue (members, key holders, cleared
/// and known-good clients first) instead of in the origin's own queue, where it would become
/// timeouts and 503s for everyone alike.
///
/// A gradient limiter in the manner of Netflix's concurrency-limits (`Gradient2Limit`) and Envoy's
/// adaptive concurrency filter, on plain values with time passed in (nanoseconds):
///
/// - Samples are collected per window (``Configuration/window``, or ``Configuration/windowSamples``
///   at high load): the mean response time of the answers that were not "overloaded", and whether
///   any was (502/503/504, a timeout: quick refusals say nothing about the origin's service time).
/// - The no-load response time is the lowest window mean seen in the last
///   ``Configuration/baselineWindows`` windows (so it follows a deploy that made the site slower).
/// - An overloaded answer in the window cuts the limit by ``Configuration/backoff`` (multiplicative
///   decrease). Else, when the window's mean exceeds the baseline × ``Configuration/tolerance`` +
///   ``Configuration/slack`` (requests queue at the origin), the limit shrinks by the gradient
///   (that bound / mean, at least one half); else, when the window used most of the limit, it
///   grows by one plus a quarter of the limit's square root per window.
/// - The limit stays within ``Configuration/minimum`` and ``Configuration/maximum`` (the
///   configured connection cap).
public struct AdaptiveConcurrency: Sendable, Equatable {
    /// Tuning; the defaults suit an origin that answers in milliseconds to seconds.
    public struct Configuration: Sendable, Hashable {
        /// Smallest limit (requests at once).
        public var minimum: Int = 2
        /// Largest limit: the configured cap.
        public var maximum: Int = 128
        /// Limit to start from (4 when nil): a small origin is not flooded before anything is
        /// known; the limit grows by half per window (slow start) until the first sign of
        /// queueing or overload, so a large origin reaches its knee within a few seconds.
        public var initial: Int? = nil
        /// Mean response time over this many times the baseline (plus `slack`) counts as queueing
        /// at the origin.
        public var tolerance: Double = 1.5
        /// Added to the bound, nanoseconds: a fast origin's jitter (0.2 ms one window, 0.6 the
        /// next) is not queueing.
        public var slack: Int64 = 5_000_000
        /// Share of the limit kept after an overloaded answer (0.5...0.95).
        public var backoff: Double = 0.8
        /// Length of one sampling window, nanoseconds.
        public var window: Int64 = 250_000_000
        /// Samples that close a window early (a busy origin adapts faster).
        public var windowSamples = 200
        /// Windows the baseline (lowest mean) is taken over.
        public var baselineWindows = 120

        /// The documented defaults.
        public init() {}
    }

    public let configuration: Configuration
    /// Requests that may be at the origin at once now.
    public private(set) var limit: Double
    /// The no-load response time, nanoseconds (0 until the first window closed).
    public private(set) var baseline: Int64 = 0
    /// The last closed window's mean response time, nanoseconds.
    public private(set) var lastMean: Int64 = 0
    private var windowStart: Int64
    private var windowSum: Int64 = 0
    private var windowCount = 0
    private var windowOverloads = 0
    /// Growing by half per window until the first sign of queueing or overload.
    private var slowStart = true
    private var windowOverloaded = false
    private var windowPeakInFlight = 0
    /// Lowest window means of recent windows (a ring), for the baseline.
    private var recentMeans: [Int64] = []
    private var recentIndex = 0

    /// A limiter starting at `initial` (or the maximum) at `now`.
    public init(configuration: Configuration, now: Int64) {
        var c = configuration
        c.maximum = max(1, c.maximum)
        c.minimum = min(max(1, c.minimum), c.maximum)
        c.tolerance = max(1.1, c.tolerance)
        c.backoff = min(0.95, max(0.5, c.backoff))
        c.windowSamples = max(1, c.windowSamples)
        c.baselineWindows = max(1, c.baselineWindows)
        self.configuration = c
        self.limit = Double(min(c.maximum, max(c.minimum, c.initial ?? 4)))
        self.windowStart = now
    }

    /// The limit as a whole number of requests.
    public var currentLimit: Int { Int(limit) }

    /// A request is about to go to the origin with `inFlight` requests there (itself included).
    public mutating func started(inFlight: Int) {
        windowPeakInFlight = max(windowPeakInFlight, inFlight)
    }

    /// The origin answered (or failed) a request that took `latency` nanoseconds; `overloaded` for
    /// 502/503/504 and timeouts. Returns true when the limit changed.
    @discardableResult
    public mutating func record(latency: Int64, overloaded: Bool, now: Int64) -> Bool {
        if overloaded {
            windowOverloaded = true
            windowOverloads += 1
        } else {
            windowSum &+= max(0, latency)
            windowCount += 1
        }
        guard windowCount + windowOverloads >= configuration.windowSamples || now - windowStart >= configuration.window else { return false }
        return closeWindow(now: now)
    }

    private mutating func closeWindow(now: Int64) -> Bool {
        let before = limit
        let c = configuration
        var mean = lastMean
        if windowCount > 0 {
            mean = windowSum / Int64(windowCount)
            if recentMeans.count < c.baselineWindows {
                recentMeans.append(mean)
            } else {
                recentMeans[recentIndex] = mean
                recentIndex = (recentIndex + 1) % c.baselineWindows
            }
            baseline = recentMeans.min() ?? mean
            lastMean = mean
        }
        let bound = Double(baseline) * c.tolerance + Double(c.slack)
        if windowOverloaded {
            limit *= c.backoff
            slowStart = false
        } else if windowCount > 0, baseline > 0, Double(mean) > bound {
            limit *= max(0.5, bound / Double(mean))
            slowStart = false
        } else if Double(windowPeakInFlight) >= limit * 0.8 {
            limit += slowStart ? max(1, limit / 2) : 1 + limit.squareRoot() / 4
        }
        limit = min(Double(c.maximum), max(Double(c.minimum), limit))
        windowStart = now
        windowSum = 0
        windowCount = 0
        windowOverloads = 0
        windowOverloaded = false
        windowPeakInFlight = 0
        return Int(limit) != Int(before)
    }
}
