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
    /// Heaviest countries and networks (`AS64500`) of the sources, when geolocation is configured
    /// (nil otherwise, and in incidents recorded before).
    public var topCountries: [TopEntry]?
    public var topNetworks: [TopEntry]?
    /// Heaviest sources and subnets among the requests the defence refused (nil in incidents
    /// recorded before these were kept): what reports name as the attack's sources.
    public var topRefusedSources: [TopEntry]?
    public var topRefusedSubnets: [TopEntry]?
    /// Mode changes with their reasons, in order.
    public var timeline: [String]

    // The fields below were added for incident reports (NIS2 Art. 23). Every one is optional so
    // incidents stored before them still decode; nil means "not recorded", not zero.

    /// Requests refused because the origin queue was full (total over the incident).
    public var shed: Int?
    /// Requests refused because their clearance was over its own rate limit (total).
    public var clearanceLimited: Int?
    /// Origin failures answered by the gateway: refused, timed out, 5xx (total).
    public var originErrors: Int?
    /// Bans issued while the incident was open (automatic and by operators).
    public var bansIssued: Int?
    /// The busiest second: when it was, and what legitimate users met at the origin then.
    public var peak: IncidentPeak?
    /// Requests per second and what became of them, one point per second, merged when full.
    public var series: IncidentSeries?
    /// Mode changes, bans and operator actions, in order (bounded; see ``IncidentEvent``).
    public var events: [IncidentEvent]?
    /// Events not kept because ``events`` was full.
    public var eventsDropped: Int?
    /// In a fleet: the fleet's incident this one belongs to, with every node's figures (nil
    /// without a fleet, and until this node's incident reached the fleet's database).
    public var fleet: FleetIncident?

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
        self.shed = 0
        self.clearanceLimited = 0
        self.originErrors = 0
        self.bansIssued = 0
        self.series = IncidentSeries()
        self.events = []
        self.eventsDropped = 0
    }

    /// The incident without its series and events: what lists, the event stream and webhooks
    /// carry (the full record is at `/api/incidents/{id}` and in reports).
    public var summary: Incident {
        var s = self
        s.series = nil
        s.events = nil
        return s
    }

    /// Most structured events one incident keeps; later ones are counted in ``eventsDropped``.
    public static let maxEvents = 500

    /// Appends `event` while fewer than ``maxEvents`` are kept, else counts it as dropped.
    public mutating func note(_ event: IncidentEvent) {
        var list = events ?? []
        if list.count < Self.maxEvents {
            list.append(event)
            events = list
        } else {
            eventsDropped = (eventsDropped ?? 0) + 1
        }
    }
}

/// The busiest second of an incident and the origin's state in it.
public struct IncidentPeak: Sendable, Equatable, Codable {
    /// Unix seconds.
    public var time: Int64
    /// Requests received in that second.
    public var requests: Int
    /// Mean origin response time in that second, in milliseconds (0: no request reached it).
    public var originLatencyMillis: Double
    /// Most requests waiting for an origin connection at once in that second.
    public var originQueue: Int

    /// The busiest second so far.
    public init(time: Int64, requests: Int, originLatencyMillis: Double, originQueue: Int) {
        self.time = time
        self.requests = requests
        self.originLatencyMillis = originLatencyMillis
        self.originQueue = originQueue
    }
}

/// Something that happened during an incident, for the report's timeline.
public struct IncidentEvent: Sendable, Equatable, Codable {
    /// What kind of event.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// The mode controller (or an operator's override) changed the site's mode.
        case mode
        /// An operator set or cleared a mode override through the admin API.
        case operatorMode = "operator_mode"
        /// A source was banned automatically (it kept tripping limits).
        case ban
        /// An operator banned an address through the admin API.
        case operatorBan = "operator_ban"
        /// An operator lifted a ban through the admin API.
        case operatorUnban = "operator_unban"
    }

    /// Unix seconds.
    public var time: Int64
    /// What kind of event.
    public var kind: Kind
    /// What happened, in words; never holds a client address (that goes in ``address``, so
    /// reports can disclose it as configured).
    public var text: String
    /// The address banned or unbanned, for ban events.
    public var address: String?

    /// An event at `time` (Unix seconds).
    public init(time: Int64, kind: Kind, text: String, address: String? = nil) {
        self.time = time
        self.kind = kind
        self.text = text
        self.address = address
    }
}

/// One step of an incident's series: the seconds from `time` to `time + step - 1` added up.
public struct SeriesPoint: Sendable, Equatable, Codable {
    /// Unix seconds of the first second in the point.
    public var time: Int64
    /// Requests received.
    public var requests: Int
    /// Requests sent on to the origin.
    public var toOrigin: Int
    /// Requests answered from the micro-cache.
    public var cacheServed: Int
    /// Challenges issued.
    public var challenged: Int
    /// Requests let through on a clearance.
    public var cleared: Int
    /// Refused by rate limits, a full origin queue or a clearance over its limit.
    public var refused: Int
    /// Most requests waiting for an origin connection at once.
    public var originQueue: Int
    /// Sum of the seconds' mean origin latencies weighted by requests to origin, in milliseconds
    /// times requests (divide by ``toOrigin`` for the mean).
    public var latencyWeightedMillis: Double

    /// A point for the second at `time` (Unix seconds).
    public init(time: Int64, requests: Int = 0, toOrigin: Int = 0, cacheServed: Int = 0, challenged: Int = 0, cleared: Int = 0,
                refused: Int = 0, originQueue: Int = 0, latencyWeightedMillis: Double = 0) {
        self.time = time
        self.requests = requests
        self.toOrigin = toOrigin
        self.cacheServed = cacheServed
        self.challenged = challenged
        self.cleared = cleared
        self.refused = refused
        self.originQueue = originQueue
        self.latencyWeightedMillis = latencyWeightedMillis
    }

    /// Mean origin latency over the point in milliseconds (0 when nothing reached the origin).
    public var meanLatencyMillis: Double { toOrigin == 0 ? 0 : latencyWeightedMillis / Double(toOrigin) }

    /// Adds `o` (a later point) into this one: counts add up, the queue keeps its maximum.
    public mutating func absorb(_ o: SeriesPoint) {
        requests += o.requests
        toOrigin += o.toOrigin
        cacheServed += o.cacheServed
        challenged += o.challenged
        cleared += o.cleared
        refused += o.refused
        originQueue = max(originQueue, o.originQueue)
        latencyWeightedMillis += o.latencyWeightedMillis
    }
}

/// A per-second series with bounded memory: at most ``capacity`` points. When full, adjacent
/// points are merged in pairs and each point covers twice as many seconds (``step``), so an
/// incident of any length keeps its whole shape at a coarser resolution.
public struct IncidentSeries: Sendable, Equatable, Codable {
    /// Most points kept (one hour at one point per second).
    public static let defaultCapacity = 3600
    /// Seconds each point covers (1, 2, 4, ...).
    public private(set) var step: Int
    /// The points, oldest first, `step` seconds apart.
    public private(set) var points: [SeriesPoint]
    /// Most points kept.
    public let capacity: Int

    /// An empty series holding at most `capacity` points (at least 2).
    public init(capacity: Int = IncidentSeries.defaultCapacity) {
        self.step = 1
        self.points = []
        self.capacity = max(2, capacity)
    }

    enum CodingKeys: String, CodingKey { case step, points, capacity }

    /// Decodes a stored series, refusing one no ``add(_:)`` could have made (a step below one
    /// second, room for fewer than two points, more points than room), so a damaged record can
    /// neither divide by zero nor grow without bound.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        step = try c.decode(Int.self, forKey: .step)
        points = try c.decode([SeriesPoint].self, forKey: .points)
        capacity = try c.decode(Int.self, forKey: .capacity)
        guard step >= 1, step <= 1 << 40, capacity >= 2, capacity <= 1 << 20, points.count <= capacity else {
            throw DecodingError.dataCorruptedError(forKey: .step, in: c, debugDescription: "not a series add(_:) could have made")
        }
    }

    /// Adds one second (its `time` is the second's Unix time). Seconds older than the last point
    /// are folded into it.
    public mutating func add(_ second: SeriesPoint) {
        if var last = points.last, second.time < last.time + Int64(step) {
            last.absorb(second)
            points[points.count - 1] = last
            return
        }
        var p = second
        // Align to the step so merged points stay on a regular grid.
        if let first = points.first { p.time = first.time + (second.time - first.time) / Int64(step) * Int64(step) }
        points.append(p)
        if points.count > capacity { halve() }
    }

    /// Merges adjacent pairs: half as many points, each twice as long.
    private mutating func halve() {
        var merged: [SeriesPoint] = []
        merged.reserveCapacity(points.count / 2 + 1)
        step *= 2
        guard let origin = points.first?.time else { return }
        for var p in points {
            p.time = origin + (p.time - origin) / Int64(step) * Int64(step)
            if var last = merged.last, last.time == p.time {
                last.absorb(p)
                merged[merged.count - 1] = last
            } else {
                merged.append(p)
            }
        }
        points = merged
    }
}


/// One incident of a site across a fleet (docs/fleet.md): the first node whose site leaves normal
/// mode opens it, every node whose same site does within its window joins it.
public struct FleetIncident: Sendable, Equatable, Codable {
    /// The fleet's number for it (not a node's own incident number).
    public var id: Int64
    public var site: String
    /// Unix seconds: the earliest start and, once every node's incident closed, the latest end.
    public var start: Int64
    public var end: Int64?
    /// One entry per node that saw the attack, by node name.
    public var nodes: [IncidentNodeFigures]

    /// A fleet incident as read back.
    public init(id: Int64, site: String, start: Int64, end: Int64?, nodes: [IncidentNodeFigures]) {
        self.id = id
        self.site = site
        self.start = start
        self.end = end
        self.nodes = nodes
    }

    /// The figures of every node added up (peak: the sum of the nodes' peaks, an upper bound of
    /// the fleet's busiest second, since the nodes' peaks need not fall in the same second).
    public var total: IncidentNodeFigures {
        var t = IncidentNodeFigures(node: "fleet", incident: 0, start: start, end: end)
        for n in nodes {
            t.peakRequestsPerSecond += n.peakRequestsPerSecond
            t.requests += n.requests
            t.refused += n.refused
            t.challenged += n.challenged
            t.toOrigin += n.toOrigin
        }
        return t
    }
}

/// One node's part of a ``FleetIncident``: its own traffic only (never the other nodes' counts it
/// adds up for detection).
public struct IncidentNodeFigures: Sendable, Equatable, Codable {
    /// The node's name.
    public var node: String
    /// The node's own incident number.
    public var incident: Int
    /// Unix seconds.
    public var start: Int64
    public var end: Int64?
    /// The node's busiest second (requests received).
    public var peakRequestsPerSecond = 0
    /// Requests the node received, and refused (rate limits, full origin queue, clearances over
    /// their rate), challenged and sent to the origin during the incident.
    public var requests = 0
    public var refused = 0
    public var challenged = 0
    public var toOrigin = 0
    /// The node's heaviest refused sources (else its heaviest sources), at most 5.
    public var topSources: [TopEntry] = []

    /// Figures at zero.
    public init(node: String, incident: Int, start: Int64, end: Int64?) {
        self.node = node
        self.incident = incident
        self.start = start
        self.end = end
    }
}
