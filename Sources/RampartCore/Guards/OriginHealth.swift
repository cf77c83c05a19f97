import NIOCore

/// Health of one origin as seen by one event loop: active check results (shared by the checker) and
/// passive failures of live requests (local). Pure; time passed in.
public struct OriginHealth: Sendable {
    /// Passive ejection settings.
    public var passive: PassiveHealthConfig
    /// Active check thresholds.
    public var active: HealthCheckConfig
    /// False while active checks say the origin is down.
    public private(set) var activeUp = true
    private var consecutiveCheckFailures = 0
    private var consecutiveCheckSuccesses = 0
    private var consecutiveFailures = 0
    private var ejectedUntil: NIODeadline? = nil

    /// Healthy until told otherwise.
    public init(active: HealthCheckConfig, passive: PassiveHealthConfig) {
        self.active = active
        self.passive = passive
    }

    /// True when requests may go to this origin at `now`.
    public func isAvailable(now: NIODeadline) -> Bool {
        guard activeUp else { return false }
        if let until = ejectedUntil, now < until { return false }
        return true
    }

    /// A live request to the origin succeeded.
    public mutating func requestSucceeded() {
        consecutiveFailures = 0
        ejectedUntil = nil
    }

    /// A live request failed (connect error, timeout, 502/503/504). Returns true when this ejects it.
    @discardableResult
    public mutating func requestFailed(now: NIODeadline) -> Bool {
        consecutiveFailures += 1
        if consecutiveFailures >= passive.maxFails {
            consecutiveFailures = 0
            ejectedUntil = now + passive.ejectFor
            return true
        }
        return false
    }

    /// An active check finished. Returns the new up/down state when it changed.
    @discardableResult
    public mutating func checkFinished(healthy: Bool) -> Bool? {
        if healthy {
            consecutiveCheckFailures = 0
            consecutiveCheckSuccesses += 1
            if !activeUp, consecutiveCheckSuccesses >= active.healthyAfter {
                activeUp = true
                ejectedUntil = nil
                return true
            }
        } else {
            consecutiveCheckSuccesses = 0
            consecutiveCheckFailures += 1
            if activeUp, consecutiveCheckFailures >= active.unhealthyAfter {
                activeUp = false
                return false
            }
        }
        return nil
    }

    /// Sets the active state directly (used to copy the checker's verdict to other event loops).
    public mutating func setActiveUp(_ up: Bool) {
        activeUp = up
        if up { ejectedUntil = nil }
    }
}

/// Picks an origin for a request among those available.
public struct OriginBalancer: Sendable {
    /// The strategy.
    public let strategy: BalanceStrategy
    private var next = 0

    /// A balancer using `strategy`.
    public init(strategy: BalanceStrategy) { self.strategy = strategy }

    /// The index of the origin to use, or nil when none is available. `available(i)` says whether
    /// origin i may take requests; `inFlight(i)` is its current load.
    public mutating func pick(count: Int, available: (Int) -> Bool, inFlight: (Int) -> Int) -> Int? {
        guard count > 0 else { return nil }
        switch strategy {
        case .roundRobin:
            for step in 0..<count {
                let i = (next + step) % count
                if available(i) {
                    next = (i + 1) % count
                    return i
                }
            }
            return nil
        case .leastConnections:
            var best: Int? = nil
            var bestLoad = Int.max
            // Start at a rotating offset so ties spread instead of always hitting origin 0.
            for step in 0..<count {
                let i = (next + step) % count
                guard available(i) else { continue }
                let load = inFlight(i)
                if load < bestLoad {
                    best = i
                    bestLoad = load
                }
            }
            next = (next + 1) % count
            return best
        }
    }
}
