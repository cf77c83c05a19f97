import Foundation

/// A report as a STIX 2.1 bundle: the reporting identity, the attack pattern (CAPEC-488 HTTP
/// flood), from the notification on indicators for the heaviest sources (`ipv4-addr`/`ipv6-addr`
/// patterns, address blocks in `subnet` mode, none in `hashed` mode) and JA4 fingerprints (a
/// pattern on the `x_ja4` custom property of `network-traffic`), observed-data and sightings with
/// counts, and a `report` object that ties them together. Ids are UUIDv5 from the incident, so the
/// same report gets the same ids; SCO ids follow STIX's own deterministic rule.
package enum StixBundle {
    /// How long after the incident's end an address indicator stays valid (addresses get reused).
    package static let addressValidity: Int64 = 7 * 86400
    /// How long after the end a fingerprint indicator stays valid.
    package static let fingerprintValidity: Int64 = 30 * 86400

    /// The rendering of `report` (built from `incident`) as of `now`, Unix seconds.
    package static func render(_ report: IncidentReport, incident: Incident, now: Int64) -> String {
        let base = "\(incident.site)/\(incident.id)/\(incident.start)"
        func id(_ type: String, _ key: String) -> String { "\(type)--\(UUIDv5.string("\(base)/\(type)/\(key)"))" }
        let created = ReportTime.rfc3339(incident.start)
        let end = incident.end ?? max(now, incident.start)
        let modified = ReportTime.rfc3339(max(end, incident.start))
        let organisation = report.reporter.organisation.value ?? "UNNAMED ENTITY (to be filled by the operator: reports.organisation)"
        let identityID = "identity--\(UUIDv5.string("identity/\(organisation)"))"
        var objects: [[String: Any]] = []
        func common(_ type: String, _ objectID: String) -> [String: Any] {
            ["type": type, "spec_version": "2.1", "id": objectID, "created": created, "modified": modified, "created_by_ref": identityID]
        }
        var identity: [String: Any] = ["type": "identity", "spec_version": "2.1", "id": identityID, "created": created, "modified": created,
                                       "name": organisation, "identity_class": "organization"]
        if let sector = report.reporter.sector.value { identity["description"] = "NIS2 sector: \(sector)" }
        objects.append(identity)
        let attackID = id("attack-pattern", "http-flood")
        var attack = common("attack-pattern", attackID)
        attack["name"] = "HTTP Flood"
        attack["description"] = "Application-layer DDoS: a flood of HTTP requests meant to exhaust the web service or its origin."
        attack["external_references"] = [["source_name": "capec", "external_id": "CAPEC-488", "url": "https://capec.mitre.org/data/definitions/488.html"]]
        objects.append(attack)
        var refs: [String] = [identityID, attackID]

        if let ind = report.indicators {
            let from = ReportTime.rfc3339(incident.start)
            let first = ReportTime.rfc3339(incident.start)
            let last = ReportTime.rfc3339(max(end, incident.start))
            func indicate(_ indicatorID: String, name: String, pattern: String, validity: Int64, count: Int, observed: [String]) {
                var i = common("indicator", indicatorID)
                i["name"] = name
                i["indicator_types"] = ["malicious-activity"]
                i["pattern"] = pattern
                i["pattern_type"] = "stix"
                i["pattern_version"] = "2.1"
                i["valid_from"] = from
                i["valid_until"] = ReportTime.rfc3339(max(end, incident.start) + validity)
                i["kill_chain_phases"] = [["kill_chain_name": "mitre-attack", "phase_name": "impact"]]
                objects.append(i)
                let relID = id("relationship", indicatorID)
                var r = common("relationship", relID)
                r["relationship_type"] = "indicates"
                r["source_ref"] = indicatorID
                r["target_ref"] = attackID
                objects.append(r)
                let sightingID = id("sighting", indicatorID)
                var s = common("sighting", sightingID)
                s["sighting_of_ref"] = indicatorID
                s["count"] = min(max(count, 0), 999_999_999)
                s["first_seen"] = first
                s["last_seen"] = last
                s["where_sighted_refs"] = [identityID]
                if !observed.isEmpty { s["observed_data_refs"] = observed }
                objects.append(s)
                refs += [indicatorID, relID, sightingID]
            }
            // Addresses only when they can be matched: full addresses or blocks, not pseudonyms.
            if ind.sourceDisclosure != .hashed {
                // In `subnet` mode the sources already are their blocks.
                for entry in ind.sources {
                    let host = entry.key.split(separator: "/").first.map(String.init) ?? entry.key
                    guard let ip = IPAddress(host) else { continue }
                    let scoType = ip.isIPv4 ? "ipv4-addr" : "ipv6-addr"
                    let scoID = "\(scoType)--\(UUIDv5.string(namespace: UUIDv5.stixObservables, canonicalValue(entry.key)))"
                    if !objects.contains(where: { ($0["id"] as? String) == scoID }) {
                        objects.append(["type": scoType, "spec_version": "2.1", "id": scoID, "value": entry.key])
                    }
                    let observedID = id("observed-data", entry.key)
                    var o = common("observed-data", observedID)
                    o["first_observed"] = first
                    o["last_observed"] = last
                    o["number_observed"] = min(max(entry.count, 1), 999_999_999)
                    o["object_refs"] = [scoID]
                    objects.append(o)
                    refs += [scoID, observedID]
                    indicate(id("indicator", entry.key), name: "Source of the HTTP flood on \(incident.site): \(entry.key) (\(entry.count) requests)",
                             pattern: "[\(scoType):value = '\(patternLiteral(entry.key))']", validity: addressValidity, count: entry.count, observed: [observedID])
                }
            }
            for entry in ind.fingerprints where !entry.key.isEmpty {
                indicate(id("indicator", "ja4/" + entry.key), name: "JA4 TLS fingerprint of the HTTP flood on \(incident.site) (about \(entry.count) requests)",
                         pattern: "[network-traffic:x_ja4 = '\(patternLiteral(entry.key))']", validity: fingerprintValidity, count: entry.count, observed: [])
            }
        }

        let reportID = id("report", report.stage.rawValue)
        var r = common("report", reportID)
        r["name"] = "\(report.stageTitle): Rampart incident #\(incident.id) on \(incident.site)"
        r["description"] = report.earlyWarning.summary + " Awareness \(report.incident.awareness); early warning due \(report.deadlines.earlyWarning), notification due \(report.deadlines.notification), final report due \(report.deadlines.finalReport)."
            + (report.indicators?.sourceDisclosure == .hashed ? " Sources are pseudonymised (reports.sources: hashed) and carry no address indicators." : "")
        r["published"] = ReportTime.rfc3339(max(now, incident.start))
        r["report_types"] = ["threat-report"]
        r["labels"] = ["nis2-\(report.stage.rawValue)", "ddos", "http-flood"]
        r["object_refs"] = refs
        objects.append(r)
        let bundle: [String: Any] = ["type": "bundle", "id": "bundle--\(UUIDv5.string("\(base)/bundle/\(report.stage.rawValue)/\(report.generatedAt)"))", "objects": objects]
        return ReportJSON.text(bundle)
    }

    /// `value` as a STIX pattern string literal body: backslashes and quotes escaped.
    static func patternLiteral(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
    }

    /// The JSON the SCO id of an address is computed from (STIX 2.1 §2.9: its id-contributing
    /// property `value`, canonicalised).
    static func canonicalValue(_ value: String) -> String {
        ReportJSON.text(["value": value], pretty: false)
    }
}

/// JSON text of Foundation values: sorted keys, slashes unescaped.
enum ReportJSON {
    static func text(_ value: Any, pretty: Bool = true) -> String {
        var options: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes]
        if pretty { options.insert(.prettyPrinted) }
        guard let data = try? JSONSerialization.data(withJSONObject: value, options: options) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
