/// Per-site attack detection: one second of traffic at a time goes in, the site's mode comes out.
/// Plain values and an injected clock (whole seconds), so every transition is tested with series.

/// How hard a site defends itself.
public enum SiteMode: String, Sendable, Hashable, CaseIterable, Comparable {
    /// Nobody is challenged.
    case normal
    /// Traffic left its baseline: clients without clearance that behave like tools are challenged.
    case elevated
    /// Every client without clearance is challenged on challengeable routes.
    case underAttack = "under_attack"

    var rank: Int {
        switch self {
        case .normal: 0
        case .elevated: 1
        case .underAttack: 2
        }
    }

    public static func < (a: SiteMode, b: SiteMode) -> Bool { a.rank < b.rank }
}

/// Which challenge a client without clearance gets.
public enum ChallengeTier: String, Sendable, Hashable, CaseIterable, Comparable {
    /// An invisible redirect that sets a signed cookie and expects it back.
    case cookie
    /// A proof-of-work page (with the no-JavaScript wait as its fallback).
    case pow

    public static func < (a: ChallengeTier, b: ChallengeTier) -> Bool { a == .cookie && b == .pow }
}

/// When a site's mode changes. Factors multiply the learned baseline (never below `minRate`).
public struct DetectionConfig: Hashable, Sendable {
    /// False keeps the site in normal mode unless an operator sets another.
    public var enabled = true
    /// Requests per second under which rate alone never raises the mode (small sites' noise).
    public var minRate: Double = 50
    /// Rate over the baseline (times) that raises the site to elevated.
    public var elevatedFactor: Double = 3
    /// Rate over the baseline (times) that, with an attack signal, raises it to under attack.
    public var attackFactor: Double = 6
    /// Consecutive seconds a condition must hold before the mode goes up.
    public var sustain = 2
    /// Calm seconds before under attack steps down to elevated.
    public var calmUnderAttack = 15
    /// Calm seconds before elevated steps down to normal.
    public var calmElevated = 20
    /// Half-life of the learned baseline, in seconds (it learns only from calm seconds).
    public var baselineHalfLife: Double = 600
    /// Share of requests with a URL not seen before in the second that marks cache busting.
    public var cacheBustShare: Double = 0.5
    /// Share of challengeable requests without clearance, once cookies were handed out in
    /// elevated mode, that marks clients which keep no cookies.
    public var unclearedShare: Double = 0.6
    /// Share of requests refused by rate limits that marks heavy sources.
    public var limitedShare: Double = 0.3
    /// Share of requests with a method other than GET/HEAD that marks a flood of form posts
    /// (login, search): everyday traffic is mostly page views.
    public var postShare: Double = 0.6
    /// Share of logins and unknown-key requests the origin refused that marks credential
    /// spraying (with at least 20 such answers in the second).
    public var failedCredentialShare: Double = 0.5
    /// Share of requests that are page views of clients (or of groups: a subnet, a request
    /// fingerprint) browsing like bots (``BehaviourScore``) that marks a human-rate bot flood.
    public var suspectShare: Double = 0.5
    /// Seconds in under attack after which cleared clients that still flood raise the tier to pow.
    public var escalateAfter = 5

    /// The documented defaults.
    public init() {}
}

/// One second of one site's traffic, summed over event loops.
public struct TrafficSecond: Sendable {
    /// Request heads received.
    public var requests = 0
    /// Requests sent on to an origin.
    public var toOrigin = 0
    /// Requests answered from the micro-cache.
    public var cacheServed = 0
    /// Challenges issued (redirects and pages).
    public var challenged = 0
    /// Requests let through on a clearance cookie.
    public var cleared = 0
    /// Challengeable requests that came without a valid clearance.
    public var uncleared = 0
    /// Requests refused by rate limits.
    public var limited = 0
    /// Requests with a method other than GET and HEAD.
    public var nonGet = 0
    /// Logins and requests with unknown API keys the origin answered, and those it refused
    /// (wrong credentials, ``CredentialFailures``); both counted in the second of the answer.
    public var credentialAttempts = 0
    public var credentialFailures = 0
    /// Requests refused because their clearance was over its own rate limit.
    public var clearanceLimited = 0
    /// Page views (pages and searches) whose client, or its groups, browse like bots
    /// (``BehaviourScore/Standing/suspect``).
    public var suspects = 0
    /// Distinct targets among requests let through on a clearance.
    public var clearedTargets = HyperLogLog()
    /// Origin failures (refused, timed out, 5xx answered by the gateway).
    public var originErrors = 0
    /// Requests refused because the origin queue was full.
    public var shed = 0
    /// Most requests waiting for an origin connection at once.
    public var queuePeak = 0
    /// Requests the site's origins may serve at once, as the gateway has learned it (the sum of
    /// every loop's ``AdaptiveConcurrency`` limit, or connection cap), at the end of the second.
    public var originLimit = 0
    /// Sum and count of origin response times (head received), in microseconds.
    public var latencySumMicros = 0
    public var latencyCount = 0
    /// Distinct client addresses.
    public var sources = HyperLogLog()
    /// Distinct request targets (path and query).
    public var targets = HyperLogLog()
    /// Heaviest client addresses, subnets, paths (sampled) and user agents (sampled).
    public var topSources = SpaceSaving<IPAddress>(capacity: 32)
    public var topSubnets = SpaceSaving<IPAddress>(capacity: 32)
    public var topPaths = SpaceSaving<String>(capacity: 32)
    public var topAgents = SpaceSaving<String>(capacity: 16)
    /// Heaviest JA4 TLS fingerprints (sampled; TLS requests only).
    public var topFingerprints = SpaceSaving<String>(capacity: 16)
    /// Heaviest countries (ISO codes) and networks (`AS64500`) of the sources (sampled; only when
    /// geolocation is configured).
    public var topCountries = SpaceSaving<String>(capacity: 16)
    public var topNetworks = SpaceSaving<String>(capacity: 16)
    /// Heaviest client addresses and subnets among the requests the defence refused (rate limits,
    /// bans, failed checks, rules): the attack's sources, which incident reports name, as opposed
    /// to the heaviest of all traffic, which may be a busy office of legitimate users.
    public var refusedSources = SpaceSaving<IPAddress>(capacity: 32)
    public var refusedSubnets = SpaceSaving<IPAddress>(capacity: 32)

    /// An empty second.
    public init() {}

    /// Adds another loop's second.
    public mutating func merge(_ o: TrafficSecond) {
        requests += o.requests
        toOrigin += o.toOrigin
        cacheServed += o.cacheServed
        challenged += o.challenged
        cleared += o.cleared
        uncleared += o.uncleared
        limited += o.limited
        nonGet += o.nonGet
        credentialAttempts += o.credentialAttempts
        credentialFailures += o.credentialFailures
        clearanceLimited += o.clearanceLimited
        suspects += o.suspects
        clearedTargets.merge(o.clearedTargets)
        originErrors += o.originErrors
        shed += o.shed
        queuePeak = max(queuePeak, o.queuePeak)
        originLimit += o.originLimit
        latencySumMicros += o.latencySumMicros
        latencyCount += o.latencyCount
        sources.merge(o.sources)
        targets.merge(o.targets)
        topSources.merge(o.topSources)
        topSubnets.merge(o.topSubnets)
        topPaths.merge(o.topPaths)
        topAgents.merge(o.topAgents)
        topFingerprints.merge(o.topFingerprints)
        topCountries.merge(o.topCountries)
        topNetworks.merge(o.topNetworks)
        refusedSources.merge(o.refusedSources)
        refusedSubnets.merge(o.refusedSubnets)
    }

    /// Mean origin response time in milliseconds (0 with no samples).
    public var meanLatencyMillis: Double {
        latencyCount == 0 ? 0 : Double(latencySumMicros) / Double(latencyCount) / 1000
    }

    /// True when requests waited for, or were refused, an origin connection.
    public var originSaturated: Bool { queuePeak > 0 || shed > 0 }
}

/// A change of a site's mode or challenge tier, with the numbers that caused it.
public struct ModeChange: Sendable, Equatable {
    public var from: SiteMode
    public var to: SiteMode
    public var tier: ChallengeTier
    /// Whole seconds of the injected clock.
    public var at: Int64
    /// Why, in words an operator reads.
    public var reason: String
    /// True when an operator forced it.
    public var manual: Bool
}

/// The state machine of one site's mode: a learned baseline, conditions that must hold for
/// `sustain` seconds to go up, calm periods to come down (hysteresis, so it does not flap), and an
/// operator override that wins until cleared.
public struct ModeController: Sendable {
    public var config: DetectionConfig
    /// Mode the detector chose (what the site would be in without an override).
    public private(set) var automatic = SiteMode.normal
    /// Mode forced by an operator, if any.
    public private(set) var override: SiteMode?
    /// Challenge tier in force while challenging.
    public private(set) var tier = ChallengeTier.cookie
    /// Tier forced by the config (`challenge.tier`), nil for automatic.
    public var fixedTier: ChallengeTier?
    /// Learned requests per second in calm times.
    public private(set) var baseline: Double = 0
    /// Second (injected clock) the current automatic mode began.
    public private(set) var since: Int64 = 0
    private var hotSeconds = 0
    private var attackSeconds = 0
    private var calmSeconds = 0
    private var learned = 0

    public init(config: DetectionConfig, fixedTier: ChallengeTier? = nil) {
        self.config = config
        self.fixedTier = fixedTier
        if let fixedTier { tier = fixedTier }
    }

    /// The mode in force: the override if an operator set one, else the automatic mode.
    public var mode: SiteMode { override ?? automatic }

    /// The threshold base: the baseline, never below `minRate`.
    public var base: Double { max(baseline, config.minRate) }

    /// Forces a mode (nil returns to automatic). Returns the change in force, if any, with
    /// `reason` (or a default saying an operator did it).
    public mutating func setOverride(_ mode: SiteMode?, at now: Int64, reason: String? = nil) -> ModeChange? {
        let before = self.mode
        override = mode
        guard self.mode != before else { return nil }
        return ModeChange(
            from: before, to: self.mode, tier: tier, at: now,
            reason: reason ?? (mode == nil ? "operator returned the site to automatic mode" : "set by an operator"), manual: true
        )
    }

    /// Feeds one second of traffic. Returns a change of the mode in force or of the tier.
    public mutating func observe(_ s: TrafficSecond, at now: Int64) -> ModeChange? {
        let before = (mode, tier)
        guard config.enabled else {
            automatic = .normal
            return nil
        }
        let rate = Double(s.requests)
        let base = self.base
        let distinctTargets = Double(s.targets.estimate)
        let cacheBusting = s.requests >= 20 && distinctTargets >= config.cacheBustShare * rate
        let heavySources = s.requests >= 20 && Double(s.limited) >= config.limitedShare * rate
        let formFlood = s.requests >= 20 && Double(s.nonGet) >= config.postShare * rate
        let spraying = s.credentialFailures >= 20 && Double(s.credentialFailures) >= config.failedCredentialShare * Double(s.credentialAttempts)
        let botLike = s.suspects >= 20 && Double(s.suspects) >= config.suspectShare * rate
        let challengeable = s.uncleared + s.cleared
        // Cookies are handed out from elevated on; only then does "came back without one" mean something.
        let keepsNoCookies = automatic >= .elevated && Int64.saturatingDifference(now, since) >= Int64(config.sustain) && challengeable >= 20
            && Double(s.uncleared) >= config.unclearedShare * Double(challengeable)
        let hot = rate >= base * config.elevatedFactor || s.originSaturated
        let stillHot = rate >= base * config.elevatedFactor * 0.7 || s.originSaturated
        let attackLoad = rate >= base * config.attackFactor || s.originSaturated
        var signals: [String] = []
        if cacheBusting { signals.append("\(Int(distinctTargets)) distinct URLs") }
        if heavySources { signals.append("\(s.limited) requests over rate limits") }
        if formFlood { signals.append("\(s.nonGet) of \(s.requests) requests are form posts") }
        if spraying { signals.append("\(s.credentialFailures) of \(s.credentialAttempts) logins and API keys refused by the origin") }
        if botLike { signals.append("\(s.suspects) page views from clients that load no assets nor follow links") }
        if keepsNoCookies { signals.append("\(s.uncleared) of \(challengeable) requests without the clearance cookie") }
        let attack = attackLoad && !signals.isEmpty

        hotSeconds = hot ? hotSeconds + 1 : 0
        attackSeconds = attack ? attackSeconds + 1 : 0
        calmSeconds = (stillHot || attack) ? 0 : calmSeconds + 1

        var reason = ""
        let calm = "calm for \(calmSeconds) s (\(s.requests) req/s)"
        let load = "\(s.requests) req/s against a baseline of \(Int(saturating: base))\(s.originSaturated ? ", origin saturated" : "")"
        switch automatic {
        case .normal:
            if attackSeconds >= config.sustain {
                enter(.underAttack, at: now)
                reason = "\(load); \(signals.joined(separator: ", "))"
            } else if hotSeconds >= config.sustain {
                enter(.elevated, at: now)
                reason = load
            } else if !hot {
                learn(rate)
            }
        case .elevated:
            if attackSeconds >= config.sustain {
                enter(.underAttack, at: now)
                reason = "\(load); \(signals.joined(separator: ", "))"
            } else if calmSeconds >= config.calmElevated {
                enter(.normal, at: now)
                reason = calm
            } else if signals.isEmpty, !s.originSaturated {
                // A surge of clients that behave (a deadline, breaking news) slowly becomes the norm.
                learned = max(learned, 60)
                learn(rate)
            }
        case .underAttack:
            if calmSeconds >= config.calmUnderAttack {
                enter(.elevated, at: now)
                reason = calm
            } else if fixedTier == nil, tier == .cookie, Int64.saturatingDifference(now, since) >= Int64(config.escalateAfter), s.cleared >= 20,
                Double(s.cleared) >= base * config.elevatedFactor || s.originSaturated
            {
                // Clients that pass the cookie check still flood: they bust the cache or trip their
                // clearances' own limits. People in a surge do neither, so a surge is never escalated.
                let clearedBusting = Double(s.clearedTargets.estimate) >= config.cacheBustShare * Double(s.cleared)
                let clearedHeavy = Double(s.clearanceLimited) >= config.limitedShare * Double(s.cleared)
                if clearedBusting || clearedHeavy {
                    tier = .pow
                    reason = "\(s.cleared) req/s pass the cookie check and still \(clearedBusting ? "bust the cache" : "trip their limits"): the attack keeps cookies, proof of work required"
                }
            }
        }
        if automatic == .normal, fixedTier == nil { tier = .cookie }
        guard (mode, tier) != before else { return nil }
        return ModeChange(from: before.0, to: mode, tier: tier, at: now, reason: reason, manual: false)
    }

    private mutating func enter(_ mode: SiteMode, at now: Int64) {
        automatic = mode
        since = now
        calmSeconds = 0
        // Attack evidence gathered while the site was only hot carries into elevated: a spray
        // whose signal shows a second after its load goes under attack `sustain` seconds after
        // the signal, not `sustain` seconds after the site happened to become elevated.
        if mode == .normal { attackSeconds = 0 }
        hotSeconds = 0
    }

    /// Moves the baseline towards `rate`: a plain mean over the first minute of calm seconds (so a
    /// fresh start learns fast), then an exponential average with `baselineHalfLife`.
    private mutating func learn(_ rate: Double) {
        learned += 1
        let slow = 1 - pow(0.5, 1 / max(1, config.baselineHalfLife))
        let alpha = max(slow, 1 / Double(min(learned, 60)))
        baseline += alpha * (rate - baseline)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
