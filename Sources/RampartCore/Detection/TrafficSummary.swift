import Foundation

/// One node's traffic of one site over its last second, as a fleet shares it (docs/fleet.md): the
/// exact counters of ``TrafficSecond``, its distinct-count sketches (HyperLogLog registers, which
/// merge exactly) and the top `k` keys of each heavy-hitter summary (Space-Saving).
///
/// The counters keep the names of the version-4 document (`requests`, `toOrigin`, …), so a node of
/// an older release still reads the sums; the sketches are optional, so this reads its documents.
public struct TrafficSummary: Sendable, Equatable, Codable {
    /// One heavy hitter: its key (an address, a subnet's network address, a path, an agent, a
    /// fingerprint) and its count (an upper bound, see ``SpaceSaving``).
    public struct Hitter: Sendable, Equatable, Codable {
        /// The key, as text.
        public var k: String
        /// Its count in the second.
        public var n: Int
        /// Key `k` counted `n` times.
        public init(_ k: String, _ n: Int) { (self.k, self.n) = (k, n) }
    }

    /// Request heads received; sent to an origin; answered from the cache.
    public var requests = 0, toOrigin = 0, cacheServed = 0
    /// Challenges issued; requests passed on a clearance; challengeable requests without one.
    public var challenged = 0, cleared = 0, uncleared = 0
    /// Refused by rate limits; not GET/HEAD; refused for a clearance over its own rate.
    public var limited = 0, nonGet = 0, clearanceLimited = 0
    /// Origin failures; refused because the origin queue was full.
    public var originErrors = 0, shed = 0
    /// Logins and unknown-key requests sent to the origin, and those it refused.
    public var credentialAttempts: Int?, credentialFailures: Int?
    /// Page views of clients (or groups) browsing like bots (``TrafficSecond/suspects``).
    public var suspects: Int?
    /// HyperLogLog registers (base64) of distinct sources, targets, and targets of cleared requests.
    public var sources: String?, targets: String?, clearedTargets: String?
    /// The heaviest sources, subnets (network address), paths, agents and JA4 fingerprints, and
    /// the heaviest sources and subnets among refused requests.
    public var topSources: [Hitter]?, topSubnets: [Hitter]?, topPaths: [Hitter]?, topAgents: [Hitter]?
    public var topFingerprints: [Hitter]?, refusedSources: [Hitter]?, refusedSubnets: [Hitter]?

    /// Sketches are shared only for sites with at least this many requests in the second: the
    /// detector's signals need 20, and a quiet site's document stays about 150 bytes.
    public static let sketchThreshold = 20
    /// Heavy hitters shared per summary.
    public static let topK = 16

    /// Empty counts.
    public init() {}

    /// The counters of `s`, with its sketches and top `k` when it had at least
    /// ``sketchThreshold`` requests.
    public init(_ s: TrafficSecond, k: Int = TrafficSummary.topK) {
        (requests, toOrigin, cacheServed, challenged, cleared, uncleared) = (s.requests, s.toOrigin, s.cacheServed, s.challenged, s.cleared, s.uncleared)
        (limited, nonGet, clearanceLimited, originErrors, shed) = (s.limited, s.nonGet, s.clearanceLimited, s.originErrors, s.shed)
        if s.credentialAttempts > 0 || s.credentialFailures > 0 { (credentialAttempts, credentialFailures) = (s.credentialAttempts, s.credentialFailures) }
        if s.suspects > 0 { suspects = s.suspects }
        guard s.requests >= Self.sketchThreshold else { return }
        sources = Data(s.sources.registerBytes).base64EncodedString()
        targets = Data(s.targets.registerBytes).base64EncodedString()
        if s.cleared > 0 { clearedTargets = Data(s.clearedTargets.registerBytes).base64EncodedString() }
        func list<Key>(_ summary: SpaceSaving<Key>, _ text: (Key) -> String) -> [Hitter]? {
            summary.isEmpty ? nil : summary.top(k).map { Hitter(text($0.key), $0.count) }
        }
        topSources = list(s.topSources) { $0.description }
        topSubnets = list(s.topSubnets) { $0.description }
        topPaths = list(s.topPaths) { $0 }
        topAgents = list(s.topAgents) { $0 }
        topFingerprints = list(s.topFingerprints) { $0 }
        refusedSources = list(s.refusedSources) { $0.description }
        refusedSubnets = list(s.refusedSubnets) { $0.description }
    }

    /// Adds the counters of `o` (sketches are not summed here; see ``merge(into:)``).
    public mutating func add(_ o: TrafficSummary) {
        requests += o.requests; toOrigin += o.toOrigin; cacheServed += o.cacheServed; challenged += o.challenged
        cleared += o.cleared; uncleared += o.uncleared; limited += o.limited; nonGet += o.nonGet
        clearanceLimited += o.clearanceLimited; originErrors += o.originErrors; shed += o.shed
    }

    /// Adds this summary to `s`: counters summed, distinct-count sketches united (exact union of
    /// registers), heavy hitters added with their counts.
    public func merge(into s: inout TrafficSecond) {
        s.requests += requests; s.toOrigin += toOrigin; s.cacheServed += cacheServed; s.challenged += challenged
        s.cleared += cleared; s.uncleared += uncleared; s.limited += limited; s.nonGet += nonGet
        s.clearanceLimited += clearanceLimited; s.originErrors += originErrors; s.shed += shed
        s.credentialAttempts += credentialAttempts ?? 0
        s.credentialFailures += credentialFailures ?? 0
        s.suspects += suspects ?? 0
        func unite(_ text: String?, _ sketch: inout HyperLogLog) {
            guard let text, let data = Data(base64Encoded: text), let other = HyperLogLog(registerBytes: Array(data)) else { return }
            sketch.merge(other)
        }
        unite(sources, &s.sources)
        unite(targets, &s.targets)
        unite(clearedTargets, &s.clearedTargets)
        func add<Key>(_ list: [Hitter]?, _ summary: inout SpaceSaving<Key>, _ key: (String) -> Key?) {
            for h in list ?? [] where h.n > 0 {
                if let k = key(h.k) { summary.add(k, weight: h.n) }
            }
        }
        add(topSources, &s.topSources) { IPAddress($0) }
        add(topSubnets, &s.topSubnets) { IPAddress($0) }
        add(topPaths, &s.topPaths) { $0 }
        add(topAgents, &s.topAgents) { $0 }
        add(topFingerprints, &s.topFingerprints) { $0 }
        add(refusedSources, &s.refusedSources) { IPAddress($0) }
        add(refusedSubnets, &s.refusedSubnets) { IPAddress($0) }
    }
}
