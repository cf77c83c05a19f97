import Foundation

/// A report as a MISP event (`{"Event": {...}}`): attributes for the heaviest sources (`ip-src`,
/// addresses or blocks; `text` pseudonyms in `hashed` mode), JA4 fingerprints (`text`: MISP has no
/// JA4 type), user agents (`user-agent`) and paths (`uri`), tagged with machine tags of the MISP
/// `nis2` taxonomy. The early warning carries no indicators (Art. 23(4)(a) asks for none).
package enum MispEvent {
    /// The rendering of `report` (built from `incident`) as of `now`, Unix seconds.
    package static func render(_ report: IncidentReport, incident: Incident, now: Int64) -> String {
        let base = "\(incident.site)/\(incident.id)/\(incident.start)"
        let end = max(incident.end ?? now, incident.start)
        let first = ReportTime.rfc3339(incident.start)
        let last = ReportTime.rfc3339(end)
        var attributes: [[String: Any]] = []
        func add(_ type: String, _ category: String, _ value: String, toIDs: Bool, comment: String) {
            guard !value.isEmpty else { return }
            attributes.append([
                "uuid": UUIDv5.string("\(base)/misp-attribute/\(type)/\(value)"), "type": type, "category": category, "value": value,
                "to_ids": toIDs, "comment": comment, "distribution": "5", "first_seen": first, "last_seen": last,
            ])
        }
        if let ind = report.indicators {
            for e in ind.sources {
                if ind.sourceDisclosure == .hashed {
                    add("text", "Network activity", e.key, toIDs: false, comment: "pseudonymised attack source (reports.sources: hashed), \(e.count) requests")
                } else {
                    add("ip-src", "Network activity", e.key, toIDs: true, comment: "attack source, \(e.count) requests during the incident")
                }
            }
            for e in ind.fingerprints { add("text", "Network activity", e.key, toIDs: false, comment: "JA4 TLS client fingerprint of the flood, about \(e.count) requests") }
            for e in ind.userAgents { add("user-agent", "Network activity", e.key, toIDs: false, comment: "user agent seen in the flood, about \(e.count) requests") }
            for e in ind.paths { add("uri", "Network activity", e.key, toIDs: false, comment: "path targeted on site \(incident.site), about \(e.count) requests") }
            for e in ind.topCountries ?? [] { add("text", "Other", e.key, toIDs: false, comment: "country of attack sources, \(e.count) requests") }
            for e in ind.topNetworks ?? [] { add("text", "Other", e.key, toIDs: false, comment: "network of attack sources, \(e.count) requests") }
        }
        var tags: [[String: Any]] = []
        if let sector = report.reporter.sector.value { tags.append(["name": NIS2Taxonomy.tag("impact-sectors-impacted", sector)]) }
        if report.earlyWarning.suspectedMalicious { tags.append(["name": NIS2Taxonomy.tag("nature-root-cause", "malicious-actions")]) }
        // The threat's potential: an under-attack escalation is high, elevated medium, else low.
        let severity = incident.peakMode == SiteMode.underAttack.rawValue ? "high" : incident.peakMode == SiteMode.elevated.rawValue ? "medium" : "low"
        tags.append(["name": NIS2Taxonomy.tag("nature-severity", severity)])
        let analysis: String
        switch report.stage {
        case .earlyWarning: analysis = "0"
        case .notification: analysis = "1"
        case .final: analysis = incident.end == nil ? "1" : "2"
        }
        var info = "\(report.stageTitle): HTTP flood on \(incident.site), Rampart incident #\(incident.id). " + report.earlyWarning.summary
        info += " Deadlines: early warning \(report.deadlines.earlyWarning), notification \(report.deadlines.notification), final report \(report.deadlines.finalReport)."
        var event: [String: Any] = [
            "uuid": UUIDv5.string("\(base)/misp-event/\(report.stage.rawValue)"),
            "info": info,
            "date": String(first.prefix(10)),
            "timestamp": String(max(now, incident.start)),
            "threat_level_id": severity == "high" ? "1" : severity == "medium" ? "2" : "3",
            "analysis": analysis,
            "distribution": "0",
            "published": false,
            "Attribute": attributes,
            "Tag": tags,
        ]
        if let org = report.reporter.organisation.value { event["Orgc"] = ["name": org] }
        return ReportJSON.text(["Event": event])
    }
}
