/// Incidents: what an attack looked like, kept for the operator and across restarts.

/// One named count in a top list.
public struct TopEntry: Sendable, Equatable, Codable {
    public var key: String
    public var count: Int

    public init(key: String, count: Int) {
        self.key = key
        self.count = count
    }
}

/// An attack, from the moment a site left normal mode until it returned.
public struct Incident: Sendable, Equatable, Codable {
    public var id: Int
    public var site: String
    /// Unix seconds.
    public var start: Int64
    public var end: Int64?
    /// Highest mode reached.
    public var peakMode: String
    public var peakRequestsPerSecond: Int
    public var peakDistinctSources: Int
    public var requests: Int
    public var toOrigin: Int
    public var challenged: Int
    public var cleared: Int
    public var limited: Int
    public var cacheServed: Int
    public var topSources: [TopEntry]
    public var topSubnets: [TopEntry]
    public var topPaths: [TopEntry]
    public var topAgents: [TopEntry]
    /// Heaviest JA4 TLS fingerprints (nil in incidents recorded before fingerprints were kept).
    public var topFingerprints: [TopEntry]?
    /// Mode changes with their reasons, in order.
    public var timeline: [String]

    /// A new incident of `site`, opened at `start` with its first timeline line.
    public init(id: Int, site: String, start: Int64, mode: SiteMode, line: String) {
        self.id = id
        self.site = site
        self.start = start
        self.end = nil
        self.peakMode = mode.rawValue
        self.peakRequestsPerSecond = 0
        self.peakDistinctSources = 0
        self.requests = 0
        self.toOrigin = 0
        self.challenged = 0
        self.cleared = 0
        self.limited = 0
        self.cacheServed = 0
        self.topSources = []
        self.topSubnets = []
        self.topPaths = []
        self.topAgents = []
        self.topFingerprints = []
        self.timeline = [line]
    }
}

