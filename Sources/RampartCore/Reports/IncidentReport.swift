import Crypto
import Foundation

/// The NIS2 Art. 23(4) stage a report answers.
public enum ReportStage: String, Sendable, Equatable, CaseIterable, Codable {
    /// Art. 23(4)(a): within 24 hours of becoming aware.
    case earlyWarning = "early-warning"
    /// Art. 23(4)(b): within 72 hours of becoming aware.
    case notification
    /// Art. 23(4)(d): within one month of the incident notification.
    case final

    /// The stage's title with the paragraph it answers.
    public var title: String {
        switch self {
        case .earlyWarning: return "Early warning (NIS2 Art. 23(4)(a))"
        case .notification: return "Incident notification (NIS2 Art. 23(4)(b))"
        case .final: return "Final report (NIS2 Art. 23(4)(d))"
        }
    }

    /// True from the incident notification on: figures, indicators of compromise and the series.
    public var hasAssessment: Bool { self != .earlyWarning }
}

/// The files a report is rendered to.
public enum ReportFormat: String, Sendable, Equatable, CaseIterable {
    case html
    case json
    case stix
    case misp

    /// The HTTP Content-Type.
    public var contentType: String {
        switch self {
        case .html: return "text/html; charset=utf-8"
        case .json, .misp: return "application/json"
        case .stix: return "application/stix+json;version=2.1"
        }
    }

    /// The file name a download gets, e.g. `rampart-incident-7-notification.stix.json`.
    public func fileName(incident: Int, stage: ReportStage) -> String {
        let ext: String
        switch self {
        case .html: ext = "html"
        case .json: ext = "json"
        case .stix: ext = "stix.json"
        case .misp: ext = "misp.json"
        }
        return "rampart-incident-\(incident)-\(stage.rawValue).\(ext)"
    }
}

/// A value only a person can give (financial impact, cross-border judgement, sign-off...): it stays
/// an explicit blank, marked for the operator, unless the config supplies it.
public struct ReportField: Sendable, Equatable, Codable {
    /// The value, nil while it is to be filled in.
    public var value: String?
    /// True when a person must fill it in before sending.
    public var toFill: Bool
    /// What to write there.
    public var hint: String

    public static func blank(_ hint: String) -> ReportField { ReportField(value: nil, toFill: true, hint: hint) }
    public static func given(_ value: String, _ hint: String) -> ReportField { ReportField(value: value, toFill: false, hint: hint) }
}

/// One figure of the report (nil: not recorded in this incident, e.g. one stored by an older version).
public struct ReportFigures: Sendable, Equatable, Codable {
    public var peakRequestsPerSecond: Int
    /// RFC 3339; nil for incidents recorded before the peak's time was kept.
    public var peakTime: String?
    public var peakDistinctSources: Int
    public var totalRequests: Int
    /// Total requests over the incident's length in seconds.
    public var meanRequestsPerSecond: Double
    public var toOrigin: Int
    public var cacheServed: Int
    public var challenged: Int
    public var cleared: Int
    /// Refused by rate limits.
    public var limited: Int
    /// Refused because the origin queue was full.
    public var shed: Int?
    /// Refused because a clearance was over its own limit.
    public var clearanceLimited: Int?
    /// All refusals: limited + shed + clearance-limited.
    public var refused: Int
    /// refused / total requests (0...1).
    public var refusedShare: Double
    /// challenged / total requests (0...1).
    public var challengedShare: Double
    /// (to origin + from cache) / total requests (0...1): requests that got the real page.
    public var servedShare: Double
    /// cleared / challenged: requests let through on a clearance per challenge issued (nil: none issued).
    public var challengePassRate: Double?
    /// Mean origin response time in the busiest second, in milliseconds.
    public var originLatencyAtPeakMillis: Double?
    /// Most requests waiting for an origin connection in the busiest second.
    public var originQueueAtPeak: Int?
    /// Origin failures answered by the gateway.
    public var originErrors: Int?
    /// Bans issued while the incident was open.
    public var bansIssued: Int?
}

/// Indicators of compromise, with sources disclosed as configured.
public struct ReportIndicators: Sendable, Equatable, Codable {
    /// How sources are shown: full, subnet or hashed.
    public var sourceDisclosure: SourceDisclosure
    /// Fewest requests a source or subnet needed over the incident to be listed (see
    /// ``IncidentReport/heavyThreshold(_:duration:)``).
    public var heavySourceThreshold: Int
    /// Top-list sources and subnets left out for being below it.
    public var sourcesNotListed: Int
    public var sources: [TopEntry]
    public var subnets: [TopEntry]
    /// JA4 TLS fingerprints (empty for plain-HTTP traffic or incidents recorded before them).
    public var fingerprints: [TopEntry]
    public var userAgents: [TopEntry]
    public var paths: [TopEntry]
    /// Countries of the sources; nil when GeoIP is not configured.
    public var topCountries: [TopEntry]?
    /// Networks (autonomous systems) of the sources; nil when GeoIP is not configured.
    public var topNetworks: [TopEntry]?
}

/// One line of the report's timeline.
public struct ReportEvent: Sendable, Equatable, Codable {
    /// RFC 3339.
    public var time: String
    public var kind: String
    public var text: String
    /// The address concerned, disclosed as configured.
    public var address: String?
}

/// The series for charts (a copy of the incident's, with the step in seconds).
public struct ReportSeries: Sendable, Equatable, Codable {
    public var stepSeconds: Int
    public var points: [SeriesPoint]
}

/// What a NIS2 incident report holds. Built from one ``Incident`` by ``IncidentReport/build``;
/// the sections a stage does not ask for are nil.
public struct IncidentReport: Sendable, Equatable, Codable {
    public struct Subject: Sendable, Equatable, Codable {
        public var id: Int
        public var site: String
        /// "open" or "closed".
        public var status: String
        /// When the entity became aware: the first escalation (the incident's start), RFC 3339.
        public var awareness: String
        public var end: String?
        public var durationSeconds: Int64
        public var peakMode: String
    }

    public struct Deadlines: Sendable, Equatable, Codable {
        /// Awareness + 24 hours (Art. 23(4)(a)).
        public var earlyWarning: String
        /// Awareness + 72 hours (Art. 23(4)(b)).
        public var notification: String
        /// One calendar month after the notification deadline (Art. 23(4)(d) counts from the
        /// notification's submission; sent earlier, the final report is due earlier).
        public var finalReport: String
    }

    public struct Reporter: Sendable, Equatable, Codable {
        public var organisation: ReportField
        public var sector: ReportField
        public var contact: ReportField
    }

    /// Art. 23(4)(a).
    public struct EarlyWarning: Sendable, Equatable, Codable {
        /// Whether the traffic suggests unlawful or malicious acts, by the gateway's detection.
        public var suspectedMalicious: Bool
        /// The facts behind that judgement.
        public var evidence: [String]
        /// The operator's confirmation.
        public var maliciousConfirmed: ReportField
        public var crossBorderImpact: ReportField
        public var summary: String
    }

    /// Art. 23(4)(b): initial assessment with severity and impact.
    public struct Assessment: Sendable, Equatable, Codable {
        public var affectedSites: [String]
        /// Heaviest paths during the incident (query strings are never kept).
        public var affectedRoutes: [TopEntry]
        public var figures: ReportFigures
        public var severity: ReportField
        public var impactBeyondWebService: ReportField
    }

    /// Art. 23(4)(d).
    public struct Final: Sendable, Equatable, Codable {
        public var description: String
        public var threatType: String
        public var rootCause: String
        public var mitigations: [String]
        public var crossBorderImpact: ReportField
        public var financialImpact: ReportField
        public var signOff: ReportField
        /// True when the incident is still open: Art. 23(4)(e) asks for a progress report now and
        /// the final one within a month of its end.
        public var ongoing: Bool
    }

    public var schema: String
    public var stage: ReportStage
    public var stageTitle: String
    public var generatedAt: String
    public var incident: Subject
    public var deadlines: Deadlines
    public var reporter: Reporter
    public var earlyWarning: EarlyWarning
    public var assessment: Assessment?
    public var indicators: ReportIndicators?
    public var timeline: [ReportEvent]?
    public var eventsNotKept: Int?
    public var series: ReportSeries?
    public var final: Final?
}

/// Options the report builder takes from the config and the state folder.
public struct ReportOptions: Sendable {
    public var config: ReportConfig
    /// Key for `hashed` sources; required in that mode.
    public var hashKey: SymmetricKey?

    public init(config: ReportConfig = ReportConfig(), hashKey: SymmetricKey? = nil) {
        self.config = config
        self.hashKey = hashKey
    }

    /// The pseudonym key derived from the gateway's signing secret (HKDF-SHA-256), so the same
    /// source gets the same pseudonym in every report of this gateway and only its operator can
    /// match it back.
    public static func hashKey(fromSigningSecret secret: [UInt8]) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: secret), info: Data("rampart incident report source pseudonyms".utf8), outputByteCount: 32
        )
    }
}

/// Why a report cannot be built.
public struct ReportError: Error, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Turns addresses into what the report may show.
struct SourceNamer {
    let disclosure: SourceDisclosure
    let key: SymmetricKey?

    /// An address or an address block as disclosed.
    func name(_ text: String) -> String {
        switch disclosure {
        case .full:
            return text
        case .subnet:
            if text.contains("/") { return text }
            return IPAddress(text)?.defaultSubnet.defaultSubnetDescription ?? text
        case .hashed:
            guard let key else { return "anon-unavailable" }
            let mac = HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: key)
            return "anon-" + mac.prefix(8).map { String(format: "%02x", $0) }.joined()
        }
    }

    /// `entries` with their keys disclosed; entries that map to the same name are added up.
    func entries(_ entries: [TopEntry]) -> [TopEntry] {
        var order: [String] = []
        var counts: [String: Int] = [:]
        for e in entries {
            let n = name(e.key)
            if counts[n] == nil { order.append(n) }
            counts[n, default: 0] += e.count
        }
        return order.map { TopEntry(key: $0, count: counts[$0]!) }.sorted { $0.count > $1.count }
    }
}

/// RFC 3339 times in UTC with milliseconds (`2026-11-27T18:39:16.000Z`), as STIX 2.1 wants.
public enum ReportTime {
    public static func rfc3339(_ unix: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date(timeIntervalSince1970: TimeInterval(unix)))
    }

    /// `unix` plus one calendar month in UTC (Jan 31 + 1 month = Feb 28/29).
    public static func addingMonth(_ unix: Int64) -> Int64 {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let date = Date(timeIntervalSince1970: TimeInterval(unix))
        return Int64((calendar.date(byAdding: .month, value: 1, to: date) ?? date.addingTimeInterval(30 * 86400)).timeIntervalSince1970)
    }
}

extension IncidentReport {
    /// The report of `incident` at `stage`, as of `now` (Unix seconds; an open incident's length
    /// counts up to it). `countries` and `networks` come from GeoIP when it is configured.
    public static func build(
        _ incident: Incident, stage: ReportStage, options: ReportOptions, now: Int64,
        countries: [TopEntry]? = nil, networks: [TopEntry]? = nil
    ) throws(ReportError) -> IncidentReport {
        if options.config.sources == .hashed, options.hashKey == nil {
            throw ReportError("reports.sources is 'hashed' but no pseudonym key is available (the state folder's signing.key)")
        }
        let namer = SourceNamer(disclosure: options.config.sources, key: options.hashKey)
        let end = incident.end ?? max(now, incident.start)
        let duration = max(1, end - incident.start)
        let notificationDue = incident.start + 72 * 3600
        let subject = Subject(
            id: incident.id, site: incident.site, status: incident.end == nil ? "open" : "closed",
            awareness: ReportTime.rfc3339(incident.start), end: incident.end.map(ReportTime.rfc3339),
            durationSeconds: end - incident.start, peakMode: incident.peakMode
        )
        let deadlines = Deadlines(
            earlyWarning: ReportTime.rfc3339(incident.start + 24 * 3600),
            notification: ReportTime.rfc3339(notificationDue),
            finalReport: ReportTime.rfc3339(ReportTime.addingMonth(notificationDue))
        )
        let reporter = Reporter(
            organisation: options.config.organisation.map { .given($0, "reporting entity (reports.organisation)") }
                ?? .blank("name of the reporting entity (or set reports.organisation in the config)"),
            sector: options.config.sector.map { .given($0, "NIS2 sector (reports.sector)") }
                ?? .blank("NIS2 sector of the entity (or set reports.sector in the config)"),
            contact: .blank("name, telephone and e-mail of the person the CSIRT can reach")
        )
        let figures = Self.figures(incident, duration: duration)
        // Suspected malicious when the detection escalated by itself (not only an operator).
        let automatic = incident.timeline.contains { line in
            (line.contains("-> elevated") || line.contains("-> under_attack")) && !line.contains("by operator")
        }
        var evidence: [String] = []
        evidence.append("peak of \(figures.peakRequestsPerSecond) requests per second from about \(figures.peakDistinctSources) distinct sources; highest mode \(incident.peakMode.replacingOccurrences(of: "_", with: " "))")
        if figures.refused > 0 { evidence.append("\(figures.refused) requests (\(percent(figures.refusedShare))) refused by rate limits or a full origin queue") }
        if figures.challenged > 0 { evidence.append("\(figures.challenged) challenges issued (\(percent(figures.challengedShare)) of requests)") }
        if let bans = figures.bansIssued, bans > 0 { evidence.append(bans == 1 ? "1 ban issued (automatic or by an operator)" : "\(bans) bans issued (automatic or by an operator)") }
        if let top = incident.topSources.first, incident.requests > 0 {
            evidence.append("the heaviest source sent \(top.count) requests (\(percent(Double(top.count) / Double(incident.requests))) of all)")
        }
        let summary = "Incident #\(incident.id) on site \(incident.site): \(incident.end == nil ? "ongoing since" : "from") \(subject.awareness)"
            + (incident.end.map { " to \(ReportTime.rfc3339($0))" } ?? "")
            + "; peak \(figures.peakRequestsPerSecond) requests/s, \(figures.totalRequests) requests in total, \(percent(figures.servedShare)) served, \(percent(figures.refusedShare)) refused, \(percent(figures.challengedShare)) challenged."
        let early = EarlyWarning(
            suspectedMalicious: automatic,
            evidence: evidence,
            maliciousConfirmed: .blank("confirm or deny that the incident is suspected of being caused by unlawful or malicious acts"),
            crossBorderImpact: .blank("could the incident have a cross-border impact (users or services in other Member States)?"),
            summary: summary
        )
        var report = IncidentReport(
            schema: "rampart-incident-report/1", stage: stage, stageTitle: stage.title, generatedAt: ReportTime.rfc3339(now),
            incident: subject, deadlines: deadlines, reporter: reporter, earlyWarning: early,
            assessment: nil, indicators: nil, timeline: nil, eventsNotKept: nil, series: nil, final: nil
        )
        guard stage.hasAssessment else { return report }
        report.assessment = Assessment(
            affectedSites: [incident.site], affectedRoutes: incident.topPaths, figures: figures,
            severity: .blank("severity of the impact: white (none), green (minor), yellow (large) or red (very large), as in the nis2 taxonomy"),
            impactBeyondWebService: .blank("impact beyond the web service (other systems, users, dependent services)")
        )
        let threshold = heavyThreshold(incident, duration: duration)
        let sources = incident.topSources.filter { $0.count >= threshold }
        let subnets = incident.topSubnets.filter { $0.count >= threshold }
        report.indicators = ReportIndicators(
            sourceDisclosure: options.config.sources, heavySourceThreshold: threshold,
            sourcesNotListed: incident.topSources.count - sources.count + incident.topSubnets.count - subnets.count,
            sources: namer.entries(sources), subnets: namer.entries(subnets),
            fingerprints: incident.topFingerprints ?? [], userAgents: incident.topAgents, paths: incident.topPaths,
            topCountries: countries, topNetworks: networks
        )
        report.timeline = Self.timeline(incident, namer: namer)
        report.eventsNotKept = incident.eventsDropped
        if let s = incident.series { report.series = ReportSeries(stepSeconds: s.step, points: s.points) }
        guard stage == .final else { return report }
        report.final = Final(
            description: summary + " " + evidence.joined(separator: "; ") + ".",
            threatType: "Application-layer distributed denial of service: HTTP request flood (CAPEC-488)",
            rootCause: "malicious-actions",
            mitigations: Self.mitigations(incident, figures: figures),
            crossBorderImpact: .blank("cross-border impact of the incident, where applicable"),
            financialImpact: .blank("financial impact (costs, lost revenue), if any"),
            signOff: .blank("name, role and date of the person who approves this report"),
            ongoing: incident.end == nil
        )
        return report
    }

    /// Mean request rate a source (or subnet) must have kept over the whole incident to be named
    /// in a report, in requests per second: a person browsing stays far below it.
    public static let heavySourceRate = 5
    /// Fewest requests a source must have sent to be named, however short the incident.
    public static let heavySourceMinimum = 20

    /// The fewest requests a source needs to be named: ``heavySourceRate`` over the incident's
    /// length, at least 1% of all its requests, and at least ``heavySourceMinimum``. The
    /// incident's top lists are the heaviest keys of all traffic, so in a small incident a
    /// legitimate user could rank among them; this keeps such users out of reports. (A browser
    /// loading a page sends a burst, then nothing while the person reads: minutes at 5 requests a
    /// second is a machine.)
    public static func heavyThreshold(_ i: Incident, duration: Int64) -> Int {
        max(heavySourceMinimum, Int(duration) * heavySourceRate, i.requests / 100)
    }

    static func figures(_ i: Incident, duration: Int64) -> ReportFigures {
        let refused = i.limited + (i.shed ?? 0) + (i.clearanceLimited ?? 0)
        func share(_ n: Int) -> Double { i.requests == 0 ? 0 : (Double(n) / Double(i.requests) * 10000).rounded() / 10000 }
        return ReportFigures(
            peakRequestsPerSecond: i.peakRequestsPerSecond, peakTime: i.peak.map { ReportTime.rfc3339($0.time) },
            peakDistinctSources: i.peakDistinctSources, totalRequests: i.requests,
            meanRequestsPerSecond: (Double(i.requests) / Double(duration) * 10).rounded() / 10,
            toOrigin: i.toOrigin, cacheServed: i.cacheServed, challenged: i.challenged, cleared: i.cleared, limited: i.limited,
            shed: i.shed, clearanceLimited: i.clearanceLimited, refused: refused,
            refusedShare: share(refused), challengedShare: share(i.challenged), servedShare: share(i.toOrigin + i.cacheServed),
            challengePassRate: i.challenged == 0 ? nil : (Double(i.cleared) / Double(i.challenged) * 10000).rounded() / 10000,
            originLatencyAtPeakMillis: i.peak?.originLatencyMillis, originQueueAtPeak: i.peak?.originQueue,
            originErrors: i.originErrors, bansIssued: i.bansIssued
        )
    }

    /// Structured events when recorded, else the mode-change lines older incidents kept.
    static func timeline(_ i: Incident, namer: SourceNamer) -> [ReportEvent] {
        if let events = i.events, !events.isEmpty {
            return events.map { ReportEvent(time: ReportTime.rfc3339($0.time), kind: $0.kind.rawValue, text: $0.text, address: $0.address.map(namer.name)) }
        }
        return i.timeline.map { line in
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, let t = Int64(parts[0]) else { return ReportEvent(time: ReportTime.rfc3339(i.start), kind: "mode", text: line, address: nil) }
            return ReportEvent(time: ReportTime.rfc3339(t), kind: "mode", text: String(parts[1]), address: nil)
        }
    }

    static func mitigations(_ i: Incident, figures: ReportFigures) -> [String] {
        var out: [String] = []
        out.append("automatic escalation of the site's protection mode (highest: \(i.peakMode.replacingOccurrences(of: "_", with: " ")))")
        if i.challenged > 0 { out.append("browser challenges for clients without clearance (\(i.challenged) issued, \(i.cleared) requests let through on a clearance)") }
        if figures.refused > 0 { out.append("per-source and per-route rate limits and origin queue limits (\(figures.refused) requests refused)") }
        if let b = i.bansIssued, b > 0 { out.append("bans of abusive sources at connection admission (\(b) issued)") }
        if i.cacheServed > 0 { out.append("micro-caching of pages (\(i.cacheServed) requests answered from cache)") }
        let operatorActions = (i.events ?? []).filter { $0.kind == .operatorMode || $0.kind == .operatorBan || $0.kind == .operatorUnban }.count
        if operatorActions > 0 { out.append("\(operatorActions) operator actions through the admin API (see the timeline)") }
        return out
    }
}

/// `0.1234` as `12.3%`.
func percent(_ share: Double) -> String { String(format: "%.1f%%", share * 100) }
