import Crypto
import Foundation

/// What a NIS2 incident report holds. Built from one ``Incident`` by ``IncidentReport/build``;
/// the sections a stage does not ask for are nil.
package struct IncidentReport: Sendable, Equatable, Codable {
    /// Which incident the report is about.
    package struct Subject: Sendable, Equatable, Codable {
        /// The incident number.
        package var id: Int
        /// The site it happened on.
        package var site: String
        /// "open" or "closed".
        package var status: String
        /// When the entity became aware: the first escalation (the incident's start), RFC 3339.
        package var awareness: String
        /// When it ended (RFC 3339); nil while open.
        package var end: String?
        /// Its length so far, in seconds.
        package var durationSeconds: Int64
        /// The highest mode reached.
        package var peakMode: String
    }

    /// When each submission is due, RFC 3339 UTC.
    package struct Deadlines: Sendable, Equatable, Codable {
        /// Awareness + 24 hours (Art. 23(4)(a)).
        package var earlyWarning: String
        /// Awareness + 72 hours (Art. 23(4)(b)).
        package var notification: String
        /// One calendar month after the notification deadline (Art. 23(4)(d) counts from the
        /// notification's submission; sent earlier, the final report is due earlier).
        package var finalReport: String
    }

    /// Who reports: from the config, else blanks.
    package struct Reporter: Sendable, Equatable, Codable {
        /// The reporting entity.
        package var organisation: ReportField
        /// Its NIS2 sector.
        package var sector: ReportField
        /// Whom the CSIRT can reach (always a blank).
        package var contact: ReportField
    }

    /// Art. 23(4)(a).
    package struct EarlyWarning: Sendable, Equatable, Codable {
        /// Whether the traffic suggests unlawful or malicious acts, by the gateway's detection.
        package var suspectedMalicious: Bool
        /// The facts behind that judgement.
        package var evidence: [String]
        /// The operator's confirmation.
        package var maliciousConfirmed: ReportField
        package var crossBorderImpact: ReportField
        /// One paragraph: when, how big, what became of the requests.
        package var summary: String
    }

    /// Art. 23(4)(b): initial assessment with severity and impact.
    package struct Assessment: Sendable, Equatable, Codable {
        /// The sites affected (the incident's site).
        package var affectedSites: [String]
        /// Heaviest paths during the incident (query strings are never kept).
        package var affectedRoutes: [TopEntry]
        /// What the gateway measured.
        package var figures: ReportFigures
        /// Severity of the impact on the entity (a blank).
        package var severity: ReportField
        /// Impact beyond the web service (a blank).
        package var impactBeyondWebService: ReportField
    }

    /// Art. 23(4)(d).
    package struct Final: Sendable, Equatable, Codable {
        /// Detailed description: what happened, how big, what the gateway saw.
        package var description: String
        /// Type of threat.
        package var threatType: String
        /// Likely root cause, a `nis2:nature-root-cause` value.
        package var rootCause: String
        /// Mitigation measures applied.
        package var mitigations: [String]
        package var crossBorderImpact: ReportField
        /// Financial impact (a blank).
        package var financialImpact: ReportField
        /// Who approves the report (a blank).
        package var signOff: ReportField
        /// True when the incident is still open: Art. 23(4)(e) asks for a progress report now and
        /// the final one within a month of its end.
        package var ongoing: Bool
    }

    /// Format identifier and version of this JSON.
    package var schema: String
    /// The Art. 23(4) stage.
    package var stage: ReportStage
    /// The stage in words, with its paragraph.
    package var stageTitle: String
    /// When the report was made (RFC 3339).
    package var generatedAt: String
    /// The incident.
    package var incident: Subject
    /// The three deadlines.
    package var deadlines: Deadlines
    /// The reporting entity.
    package var reporter: Reporter
    /// Art. 23(4)(a): in every stage.
    package var earlyWarning: EarlyWarning
    /// Art. 23(4)(b): from the notification on.
    package var assessment: Assessment?
    /// Indicators of compromise: from the notification on.
    package var indicators: ReportIndicators?
    /// Modes, bans and operator actions: from the notification on.
    package var timeline: [ReportEvent]?
    /// Events the incident did not keep (its list is bounded).
    package var eventsNotKept: Int?
    /// The per-second series: from the notification on.
    package var series: ReportSeries?
    /// Art. 23(4)(d): in the final stage only.
    package var final: Final?
    /// In a fleet: the fleet's incident and each node's figures (sources as `reports.sources` says).
    package var fleet: FleetIncident? = nil
}

extension IncidentReport {
    /// The report of `incident` at `stage`, as of `now` (Unix seconds; an open incident's length
    /// counts up to it). `countries` and `networks` come from GeoIP when it is configured: the
    /// incident's own lists unless others are given.
    package static func build(
        _ incident: Incident, stage: ReportStage, options: ReportOptions, now: Int64,
        countries: [TopEntry]? = nil, networks: [TopEntry]? = nil
    ) throws(ReportError) -> IncidentReport {
        if options.config.sources == .hashed, options.hashKey == nil {
            throw ReportError("reports.sources is 'hashed' but no pseudonym key is available (the state folder's signing.key)")
        }
        // Times a gateway could have recorded (1970 to 9999): a damaged record gets an error, not
        // arithmetic that overflows.
        let plausible: ClosedRange<Int64> = 0...253_402_300_799 - 40 * 86400
        guard plausible.contains(incident.start), incident.end.map({ plausible.contains($0) && $0 >= incident.start }) ?? true else {
            throw ReportError("incident #\(incident.id) has implausible start or end times (\(incident.start), \(incident.end.map(String.init) ?? "open"))")
        }
        let namer = SourceNamer(disclosure: options.config.sources, key: options.hashKey)
        let end = incident.end ?? min(max(now, incident.start), plausible.upperBound)
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
        report.fleet = incident.fleet.map { f in
            var f = f
            f.nodes = f.nodes.map { n in
                var n = n
                n.topSources = namer.entries(n.topSources)
                return n
            }
            return f
        }
        guard stage.hasAssessment else { return report }
        report.assessment = Assessment(
            affectedSites: [incident.site], affectedRoutes: incident.topPaths, figures: figures,
            severity: .blank("severity of the impact: white (none), green (minor), yellow (large) or red (very large), as in the nis2 taxonomy"),
            impactBeyondWebService: .blank("impact beyond the web service (other systems, users, dependent services)")
        )
        let threshold = heavyThreshold(incident, duration: duration)
        // The sources the defence refused (older incidents kept only the heaviest of all traffic).
        let allSources = incident.topRefusedSources ?? incident.topSources
        let allSubnets = incident.topRefusedSubnets ?? incident.topSubnets
        let sources = allSources.filter { $0.count >= threshold }
        let subnets = allSubnets.filter { $0.count >= threshold }
        report.indicators = ReportIndicators(
            sourceDisclosure: options.config.sources, heavySourceThreshold: threshold,
            sourcesNotListed: allSources.count - sources.count + allSubnets.count - subnets.count,
            sources: namer.entries(sources), subnets: namer.entries(subnets),
            fingerprints: incident.topFingerprints ?? [], userAgents: incident.topAgents, paths: incident.topPaths,
            topCountries: countries ?? incident.topCountries, topNetworks: networks ?? incident.topNetworks
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
    package static let heavySourceRate = 5
    /// Fewest requests a source must have sent to be named, however short the incident.
    package static let heavySourceMinimum = 20

    /// The fewest requests a source needs to be named: ``heavySourceRate`` over the incident's
    /// length, at least 1% of all its requests, and at least ``heavySourceMinimum``. The
    /// incident's top lists are the heaviest keys of all traffic, so in a small incident a
    /// legitimate user could rank among them; this keeps such users out of reports. (A browser
    /// loading a page sends a burst, then nothing while the person reads: minutes at 5 requests a
    /// second is a machine.)
    package static func heavyThreshold(_ i: Incident, duration: Int64) -> Int {
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
