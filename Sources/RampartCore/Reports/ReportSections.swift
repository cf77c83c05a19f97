/// The parts of an incident report that hold measurements: figures, indicators, timeline, series.

/// One figure of the report (nil: not recorded in this incident, e.g. one stored by an older version).
package struct ReportFigures: Sendable, Equatable, Codable {
    /// Requests received in the busiest second.
    package var peakRequestsPerSecond: Int
    /// RFC 3339; nil for incidents recorded before the peak's time was kept.
    package var peakTime: String?
    /// Distinct client addresses in the busiest second (estimated).
    package var peakDistinctSources: Int
    /// Requests received while the incident was open.
    package var totalRequests: Int
    /// Total requests over the incident's length in seconds.
    package var meanRequestsPerSecond: Double
    /// Requests sent on to the origin.
    package var toOrigin: Int
    /// Requests answered from the micro-cache.
    package var cacheServed: Int
    /// Challenges issued.
    package var challenged: Int
    /// Requests let through on a clearance cookie.
    package var cleared: Int
    /// Refused by rate limits.
    package var limited: Int
    /// Refused because the origin queue was full.
    package var shed: Int?
    /// Refused because a clearance was over its own limit.
    package var clearanceLimited: Int?
    /// All refusals: limited + shed + clearance-limited.
    package var refused: Int
    /// refused / total requests (0...1).
    package var refusedShare: Double
    /// challenged / total requests (0...1).
    package var challengedShare: Double
    /// (to origin + from cache) / total requests (0...1): requests that got the real page.
    package var servedShare: Double
    /// cleared / challenged: requests let through on a clearance per challenge issued (nil: none issued).
    package var challengePassRate: Double?
    /// Mean origin response time in the busiest second, in milliseconds.
    package var originLatencyAtPeakMillis: Double?
    /// Most requests waiting for an origin connection in the busiest second.
    package var originQueueAtPeak: Int?
    /// Origin failures answered by the gateway.
    package var originErrors: Int?
    /// Bans issued while the incident was open.
    package var bansIssued: Int?
}

/// Indicators of compromise, with sources disclosed as configured.
package struct ReportIndicators: Sendable, Equatable, Codable {
    /// How sources are shown: full, subnet or hashed.
    package var sourceDisclosure: SourceDisclosure
    /// Fewest requests a source or subnet needed over the incident to be listed (see
    /// ``IncidentReport/heavyThreshold(_:duration:)``).
    package var heavySourceThreshold: Int
    /// Top-list sources and subnets left out for being below it.
    package var sourcesNotListed: Int
    /// Heaviest attack sources at or above the threshold, disclosed as configured.
    package var sources: [TopEntry]
    /// Their /24 (IPv4) or /64 (IPv6) blocks, same rules.
    package var subnets: [TopEntry]
    /// JA4 TLS fingerprints (empty for plain-HTTP traffic or incidents recorded before them).
    package var fingerprints: [TopEntry]
    /// Heaviest user agents (sampled).
    package var userAgents: [TopEntry]
    /// Heaviest paths, without query strings (sampled).
    package var paths: [TopEntry]
    /// Countries of the sources; nil when GeoIP is not configured.
    package var topCountries: [TopEntry]?
    /// Networks (autonomous systems) of the sources; nil when GeoIP is not configured.
    package var topNetworks: [TopEntry]?
}

/// One line of the report's timeline.
package struct ReportEvent: Sendable, Equatable, Codable {
    /// RFC 3339.
    package var time: String
    /// `mode`, `operator_mode`, `ban`, `operator_ban` or `operator_unban`.
    package var kind: String
    /// What happened, in words.
    package var text: String
    /// The address concerned, disclosed as configured.
    package var address: String?
}

/// The series for charts (a copy of the incident's, with the step in seconds).
package struct ReportSeries: Sendable, Equatable, Codable {
    /// Seconds each point covers.
    package var stepSeconds: Int
    /// The points, oldest first.
    package var points: [SeriesPoint]
}
