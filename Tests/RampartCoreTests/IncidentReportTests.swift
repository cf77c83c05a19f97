import Foundation
import Testing

@testable import RampartCore

/// A closed incident as DetectionService records it: 2026-03-10 12:00:00 UTC, 120 s long.
private func sampleIncident(agent: String = "Mozilla/5.0 (flood)", path: String = "/search") -> Incident {
    var i = Incident(id: 7, site: "www", start: 1_773_144_000, mode: .elevated, line: "1773144000 normal -> elevated (cookie): surge")
    i.timeline.append("1773144010 elevated -> under_attack (cookie): 12x baseline")
    i.timeline.append("1773144120 under_attack -> normal (cookie): calm")
    i.end = 1_773_144_120
    i.peakMode = "under_attack"
    i.peakRequestsPerSecond = 900
    i.peakDistinctSources = 40
    i.requests = 10_000
    i.toOrigin = 3000
    i.cacheServed = 1000
    i.challenged = 2000
    i.cleared = 500
    i.limited = 3500
    i.shed = 400
    i.clearanceLimited = 100
    i.originErrors = 3
    i.bansIssued = 2
    i.peak = IncidentPeak(time: 1_773_144_012, requests: 900, originLatencyMillis: 42.5, originQueue: 7)
    i.topSources = [TopEntry(key: "198.51.100.7", count: 4000), TopEntry(key: "198.51.100.9", count: 1000), TopEntry(key: "2001:db8::5", count: 700), TopEntry(key: "203.0.113.50", count: 599)]
    i.topSubnets = [TopEntry(key: "198.51.100.0/24", count: 5000), TopEntry(key: "2001:db8::/64", count: 700)]
    i.topPaths = [TopEntry(key: path, count: 6000)]
    i.topAgents = [TopEntry(key: agent, count: 5000)]
    i.topFingerprints = [TopEntry(key: "t13d1516h2_8daaf6152771_b0da82dd1658", count: 800)]
    i.events = [
        IncidentEvent(time: 1_773_144_000, kind: .mode, text: "normal -> elevated (challenge tier cookie): surge"),
        IncidentEvent(time: 1_773_144_005, kind: .ban, text: "source banned for 60 s: rate limit", address: "198.51.100.7"),
        IncidentEvent(time: 1_773_144_030, kind: .operatorMode, text: "an operator forced the mode to under_attack (admin API)"),
        IncidentEvent(time: 1_773_144_040, kind: .operatorBan, text: "an operator banned the address for 3600 s (admin API): manual", address: "198.51.100.9"),
    ]
    var series = IncidentSeries()
    for t in 0..<120 { series.add(SeriesPoint(time: 1_773_144_000 + Int64(t), requests: 80, toOrigin: 25, challenged: 16, refused: 30, originQueue: t % 7)) }
    i.series = series
    return i
}

private let now: Int64 = 1_773_150_000

private func json(_ text: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
}

@Suite struct IncidentReportTests {
    @Test func deadlinesCountFromTheFirstEscalation() throws {
        let r = try IncidentReport.build(sampleIncident(), stage: .notification, options: ReportOptions(), now: now)
        #expect(r.incident.awareness == "2026-03-10T12:00:00.000Z")
        #expect(r.deadlines.earlyWarning == "2026-03-11T12:00:00.000Z")
        #expect(r.deadlines.notification == "2026-03-13T12:00:00.000Z")
        // One calendar month after the notification is due (Art. 23(4)(d)).
        #expect(r.deadlines.finalReport == "2026-04-13T12:00:00.000Z")
        #expect(r.incident.durationSeconds == 120)
        // Month arithmetic clamps to the month's end.
        #expect(ReportTime.rfc3339(ReportTime.addingMonth(1_769_860_800)) == "2026-02-28T12:00:00.000Z")  // from 2026-01-31
    }

    @Test func eachStageHoldsWhatArticle23AsksFor() throws {
        let i = sampleIncident()
        let early = try IncidentReport.build(i, stage: .earlyWarning, options: ReportOptions(), now: now)
        #expect(early.earlyWarning.suspectedMalicious)
        #expect(early.earlyWarning.crossBorderImpact.toFill && early.earlyWarning.crossBorderImpact.value == nil)
        #expect(early.assessment == nil && early.indicators == nil && early.timeline == nil && early.series == nil && early.final == nil)
        let notification = try IncidentReport.build(i, stage: .notification, options: ReportOptions(), now: now)
        let f = try #require(notification.assessment?.figures)
        #expect(f.refused == 4000 && f.refusedShare == 0.4 && f.challengedShare == 0.2 && f.servedShare == 0.4)
        #expect(f.challengePassRate == 0.25 && f.originLatencyAtPeakMillis == 42.5 && f.originQueueAtPeak == 7)
        #expect(notification.indicators?.sources.first == TopEntry(key: "198.51.100.7", count: 4000))
        #expect(notification.indicators?.topCountries == nil)
        // 203.0.113.50 sent 599 requests in 120 s: under 5/s, so it is not named anywhere.
        #expect(notification.indicators?.heavySourceThreshold == 600 && notification.indicators?.sourcesNotListed == 1)
        for format in ReportFormat.allCases {
            #expect(try !IncidentReport.render(i, stage: .final, format: format, options: ReportOptions(), now: now).contains("203.0.113.50"))
        }
        #expect(notification.series?.points.count == 120)
        #expect(notification.final == nil)
        let final = try IncidentReport.build(i, stage: .final, options: ReportOptions(), now: now)
        let fin = try #require(final.final)
        #expect(fin.financialImpact.toFill && fin.signOff.toFill && fin.crossBorderImpact.toFill && !fin.ongoing)
        #expect(fin.mitigations.contains { $0.contains("2 issued") } && fin.mitigations.contains { $0.contains("operator actions") })
        #expect(final.timeline?.map(\.kind) == ["mode", "ban", "operator_mode", "operator_ban"])
        // Blanks are never invented: without config the reporter is blank too.
        #expect(final.reporter.organisation.value == nil && final.reporter.contact.toFill)
        // An open incident counts up to now and its final stage is a progress report.
        var open = i
        open.end = nil
        let progress = try IncidentReport.build(open, stage: .final, options: ReportOptions(), now: 1_773_144_300)
        #expect(progress.incident.status == "open" && progress.incident.durationSeconds == 300 && progress.final?.ongoing == true)
        #expect(ReportHTML.render(progress).contains("Art. 23(4)(e)"))
        // An escalation made only by an operator is not called malicious by the gateway.
        var manual = i
        manual.timeline = ["1773144000 normal -> under_attack (cookie) by operator: operator override"]
        #expect(try !IncidentReport.build(manual, stage: .earlyWarning, options: ReportOptions(), now: now).earlyWarning.suspectedMalicious)
    }

    @Test func htmlEscapesEveryTextAndNeedsNothingFromOutside() throws {
        let i = sampleIncident(agent: "<script>alert(1)</script>\"'&", path: "/a<b>")
        let html = try IncidentReport.render(i, stage: .final, format: .html, options: ReportOptions(config: ReportConfig(organisation: "Tax & <Co>")), now: now)
        #expect(!html.contains("<script"))
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"))
        #expect(html.contains("/a&lt;b&gt;") && html.contains("Tax &amp; &lt;Co&gt;"))
        #expect(!html.contains("src=") && !html.contains("href=") && !html.contains("@import") && !html.contains("url("))
        #expect(html.components(separatedBy: "<svg").count == 3)
        #expect(html.contains("To be filled by the operator"))
        #expect(html.contains("not configured (GeoIP)"))
        let geo = try IncidentReport.render(i, stage: .notification, format: .html, options: ReportOptions(), now: now,
                                            countries: [TopEntry(key: "NL", count: 9)], networks: [TopEntry(key: "AS64496 Example", count: 9)])
        #expect(geo.contains("AS64496 Example") && !geo.contains("not configured (GeoIP)"))
        // An incident recorded with geolocation configured carries its own lists.
        var located = i
        located.topCountries = [TopEntry(key: "SE", count: 40)]
        located.topNetworks = [TopEntry(key: "AS64511", count: 40)]
        let own = try IncidentReport.render(located, stage: .notification, format: .html, options: ReportOptions(), now: now)
        #expect(own.contains("AS64511") && own.contains("SE") && !own.contains("not configured (GeoIP)"))
    }

    @Test func sourcesAreDisclosedAsConfigured() throws {
        let i = sampleIncident()
        let key = ReportOptions.hashKey(fromSigningSecret: Array(repeating: 7, count: 32))
        let subnet = try IncidentReport.build(i, stage: .final, options: ReportOptions(config: ReportConfig(sources: .subnet)), now: now)
        #expect(subnet.indicators?.sources == [TopEntry(key: "198.51.100.0/24", count: 5000), TopEntry(key: "2001:db8::/64", count: 700)])
        #expect(subnet.timeline?.compactMap(\.address) == ["198.51.100.0/24", "198.51.100.0/24"])
        let hashed = try IncidentReport.build(i, stage: .final, options: ReportOptions(config: ReportConfig(sources: .hashed), hashKey: key), now: now)
        let names = try #require(hashed.indicators?.sources.map(\.key))
        #expect(names.count == 3 && names.allSatisfy { $0.hasPrefix("anon-") && $0.count == 21 })
        #expect(Set(names).count == 3)
        // Stable under the same key, so a CSIRT can correlate reports of one gateway.
        let again = try IncidentReport.build(i, stage: .final, options: ReportOptions(config: ReportConfig(sources: .hashed), hashKey: key), now: now)
        #expect(again.indicators?.sources.map(\.key) == names)
        for format in ReportFormat.allCases {
            let text = try IncidentReport.render(i, stage: .final, format: format, options: ReportOptions(config: ReportConfig(sources: .hashed), hashKey: key), now: now)
            for address in ["198.51.100.7", "198.51.100.9", "2001:db8::5", "198.51.100.0"] {
                #expect(!text.contains(address), "\(format) leaks \(address)")
            }
        }
        #expect(throws: ReportError.self) { try IncidentReport.build(i, stage: .final, options: ReportOptions(config: ReportConfig(sources: .hashed)), now: now) }
        // A damaged record (an end before its start, a start out of any calendar) is an error, not a trap.
        var damaged = i
        damaged.end = damaged.start - 1
        #expect(throws: ReportError.self) { try IncidentReport.build(damaged, stage: .final, options: ReportOptions(), now: now) }
        damaged.start = Int64.max
        damaged.end = nil
        #expect(throws: ReportError.self) { try IncidentReport.render(damaged, stage: .final, format: .stix, options: ReportOptions(), now: now) }
    }

    /// A busy office of legitimate users can be among the heaviest of all traffic; reports name
    /// only the sources the defence refused, in every format.
    @Test func indicatorsNameOnlyRefusedSourcesNotTheBusiestOnes() throws {
        var i = sampleIncident()
        i.topSources.insert(TopEntry(key: "192.0.2.40", count: 3000), at: 1)
        i.topSubnets.insert(TopEntry(key: "192.0.2.0/24", count: 3000), at: 1)
        i.topRefusedSources = [TopEntry(key: "198.51.100.7", count: 3900), TopEntry(key: "203.0.113.50", count: 650)]
        i.topRefusedSubnets = [TopEntry(key: "198.51.100.0/24", count: 3900), TopEntry(key: "203.0.113.0/24", count: 15)]
        let report = try IncidentReport.build(i, stage: .final, options: ReportOptions(), now: now)
        #expect(report.indicators?.sources.map(\.key) == ["198.51.100.7", "203.0.113.50"])
        #expect(report.indicators?.subnets.map(\.key) == ["198.51.100.0/24"])
        #expect(report.indicators?.sourcesNotListed == 1)
        for format in ReportFormat.allCases {
            let text = try IncidentReport.render(i, stage: .final, format: format, options: ReportOptions(), now: now)
            #expect(!text.contains("192.0.2."), "\(format) names the busy legitimate office")
        }
        // Incidents stored before refused sources were kept still name their heaviest ones.
        #expect(try IncidentReport.build(sampleIncident(), stage: .final, options: ReportOptions(), now: now).indicators?.sources.first?.key == "198.51.100.7")
    }

    @Test func stixBundleHasTheShapeOfSTIX21() throws {
        let i = sampleIncident()
        let text = try IncidentReport.render(i, stage: .notification, format: .stix, options: ReportOptions(config: ReportConfig(organisation: "Tax office")), now: now)
        let bundle = try json(text)
        #expect(bundle["type"] as? String == "bundle")
        let objects = try #require(bundle["objects"] as? [[String: Any]])
        let types = objects.compactMap { $0["type"] as? String }
        #expect(types.filter { $0 == "indicator" }.count == 4)  // three addresses, one JA4
        #expect(types.contains("identity") && types.contains("report") && types.contains("observed-data") && types.contains("sighting") && types.contains("ipv6-addr"))
        let stamp = try NSRegularExpression(pattern: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#)
        for o in objects where o["type"] as? String != "ipv4-addr" && o["type"] as? String != "ipv6-addr" {
            #expect(o["spec_version"] as? String == "2.1")
            for k in ["created", "modified", "valid_from", "valid_until", "first_seen", "last_seen", "published"] {
                guard let v = o[k] as? String else { continue }
                #expect(stamp.firstMatch(in: v, range: NSRange(v.startIndex..., in: v)) != nil, "\(k) = \(v)")
            }
        }
        let patterns = objects.compactMap { $0["pattern"] as? String }
        #expect(patterns.contains("[ipv4-addr:value = '198.51.100.7']") && patterns.contains("[ipv6-addr:value = '2001:db8::5']"))
        #expect(patterns.contains("[network-traffic:x_ja4 = 't13d1516h2_8daaf6152771_b0da82dd1658']"))
        let report = try #require(objects.first { $0["type"] as? String == "report" })
        let ids = Set(objects.compactMap { $0["id"] as? String })
        #expect((report["object_refs"] as? [String]).map { Set($0).isSubset(of: ids) } == true)
        // The same incident gives the same ids; an SCO id follows STIX's own rule (checked
        // against the Python stix2 library's value for this address).
        let again = try json(try IncidentReport.render(i, stage: .notification, format: .stix, options: ReportOptions(config: ReportConfig(organisation: "Tax office")), now: now + 60))
        #expect(Set((again["objects"] as! [[String: Any]]).compactMap { $0["id"] as? String }) == ids)
        #expect(ids.contains("ipv4-addr--12592121-be4c-5a93-a813-5a5af16e50db"))
        #expect(UUIDv5.rampart.uuidString.lowercased() == "370ee056-5306-54a5-9f75-35af5df78417")
        // The early warning carries no indicators.
        let early = try json(try IncidentReport.render(i, stage: .earlyWarning, format: .stix, options: ReportOptions(), now: now))
        #expect(!(early["objects"] as! [[String: Any]]).contains { $0["type"] as? String == "indicator" })
    }

    @Test func mispEventUsesRealNIS2MachineTags() throws {
        let i = sampleIncident()
        let text = try IncidentReport.render(i, stage: .final, format: .misp, options: ReportOptions(config: ReportConfig(sector: "public-administration")), now: now)
        let event = try #require(try json(text)["Event"] as? [String: Any])
        let tags = (event["Tag"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(tags == [#"nis2:impact-sectors-impacted="public-administration""#, #"nis2:nature-root-cause="malicious-actions""#, #"nis2:nature-severity="high""#])
        let attributes = event["Attribute"] as? [[String: Any]] ?? []
        #expect(Set(attributes.compactMap { $0["type"] as? String }) == ["ip-src", "text", "user-agent", "uri"])
        #expect(attributes.contains { $0["type"] as? String == "ip-src" && $0["value"] as? String == "198.51.100.7" && $0["to_ids"] as? Bool == true })
        #expect(event["analysis"] as? String == "2" && event["threat_level_id"] as? String == "1" && event["date"] as? String == "2026-03-10")
    }

    @Test func incidentsStoredBeforeReportsStillDecodeAndReport() throws {
        // An incident as version 0.4.0 stored it: no series, events, peak or refusal totals.
        let old = #"""
        {"id":3,"site":"www","start":1773144000,"end":1773144060,"peakMode":"under_attack","peakRequestsPerSecond":500,"peakDistinctSources":20,
         "requests":4000,"toOrigin":1000,"challenged":800,"cleared":100,"limited":1500,"cacheServed":200,
         "topSources":[{"key":"203.0.113.5","count":2000}],"topSubnets":[],"topPaths":[{"key":"/","count":3000}],"topAgents":[],
         "timeline":["1773144000 normal -> under_attack (cookie): surge","1773144060 under_attack -> normal (cookie): calm"]}
        """#
        let i = try JSONDecoder().decode(Incident.self, from: Data(old.utf8))
        #expect(i.series == nil && i.events == nil && i.peak == nil && i.shed == nil && i.topFingerprints == nil)
        let r = try IncidentReport.build(i, stage: .final, options: ReportOptions(), now: now)
        #expect(r.assessment?.figures.refused == 1500 && r.assessment?.figures.originLatencyAtPeakMillis == nil)
        #expect(r.timeline?.map(\.time) == ["2026-03-10T12:00:00.000Z", "2026-03-10T12:01:00.000Z"])
        let html = ReportHTML.render(r)
        #expect(html.contains("not recorded") && !html.contains("<svg"))
        // And a new incident goes through JSON and back unchanged.
        let fresh = sampleIncident()
        #expect(try JSONDecoder().decode(Incident.self, from: JSONEncoder().encode(fresh)) == fresh)
    }

    @Test func theSeriesStaysBoundedAndKeepsEveryRequest() throws {
        var s = IncidentSeries(capacity: 100)
        var total = 0
        for t in 0..<10_000 {
            s.add(SeriesPoint(time: 1000 + Int64(t), requests: t % 13, originQueue: t == 5000 ? 99 : 1))
            total += t % 13
            #expect(s.points.count <= 100)
        }
        #expect(s.points.map(\.requests).reduce(0, +) == total)
        #expect(s.step == 128)
        #expect(s.points.map(\.originQueue).max() == 99)
        // Points stay on the step's grid, in order.
        #expect(s.points.allSatisfy { ($0.time - 1000) % Int64(s.step) == 0 })
        #expect(zip(s.points, s.points.dropFirst()).allSatisfy { $0.time < $1.time })
        // A damaged stored series is refused rather than trusted.
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(IncidentSeries.self, from: Data(#"{"step":0,"capacity":3600,"points":[]}"#.utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(IncidentSeries.self, from: Data(#"{"step":1,"capacity":1,"points":[]}"#.utf8)) }
        #expect(try JSONDecoder().decode(IncidentSeries.self, from: JSONEncoder().encode(s)) == s)
        // Incidents keep at most maxEvents events and count the rest.
        var i = sampleIncident()
        for n in 0..<1000 { i.note(IncidentEvent(time: Int64(n), kind: .ban, text: "x")) }
        #expect(i.events?.count == Incident.maxEvents && i.eventsDropped == 1000 + 4 - Incident.maxEvents)
    }

    @Test func reportsConfigIsCheckedWithFileLineAndKey() throws {
        let base = """
        listeners:
          - address: 127.0.0.1:8080
        sites:
          - name: www
            hosts: ["*"]
            origins: [{address: 127.0.0.1:9000}]
        """
        let good = try ConfigLoader.load(yaml: base + "\nreports:\n  sources: subnet\n  organisation: Tax office\n  sector: public-administration\n", file: "r.yaml")
        #expect(good.reports == ReportConfig(sources: .subnet, organisation: "Tax office", sector: "public-administration"))
        #expect(try ConfigLoader.load(yaml: base, file: "r.yaml").reports.sources == .full)
        do {
            _ = try ConfigLoader.load(yaml: base + "\nreports:\n  sources: everything\n  sector: government\n  contact: me\n", file: "r.yaml")
            Issue.record("a bad reports section loaded")
        } catch {
            let text = error.description
            #expect(text.contains("r.yaml:8") && text.contains("reports.sources") && text.contains("full, subnet or hashed"), "\(text)")
            #expect(text.contains("r.yaml:9") && text.contains("reports.sector") && text.contains("public-administration"), "\(text)")
            #expect(text.contains("r.yaml:10") && text.contains("reports.contact"), "\(text)")
        }
    }

    @Test func aFleetIncidentShowsEveryNodesFiguresWithSourcesAsConfigured() throws {
        var i = sampleIncident()
        var a = IncidentNodeFigures(node: "edge-1", incident: 7, start: 1_773_144_000, end: 1_773_144_120)
        (a.peakRequestsPerSecond, a.requests, a.refused, a.challenged, a.toOrigin) = (600, 7000, 2500, 1500, 2000)
        a.topSources = [TopEntry(key: "198.51.100.7", count: 3000)]
        var b = IncidentNodeFigures(node: "edge-2", incident: 3, start: 1_773_144_004, end: 1_773_144_118)
        (b.peakRequestsPerSecond, b.requests) = (300, 3000)
        i.fleet = FleetIncident(id: 41, site: "www", start: 1_773_144_000, end: 1_773_144_120, nodes: [a, b])
        #expect(i.fleet?.total.requests == 10_000 && i.fleet?.total.peakRequestsPerSecond == 900)
        let html = try IncidentReport.render(i, stage: .notification, format: .html, options: ReportOptions(), now: 1_773_150_000)
        #expect(html.contains("Fleet: one incident over 2 nodes") && html.contains("<td>edge-1</td>") && html.contains("<td>#3</td>"))
        #expect(html.contains("<code>198.51.100.7</code> 3000"))
        var config = ReportConfig()
        config.sources = .subnet
        let json = try IncidentReport.render(i, stage: .earlyWarning, format: .json, options: ReportOptions(config: config), now: 1_773_150_000)
        #expect(json.contains("edge-2") && json.contains("198.51.100.0/24") && !json.contains("198.51.100.7"))
        // Without a fleet nothing changes.
        #expect(try !IncidentReport.render(sampleIncident(), stage: .notification, format: .html, options: ReportOptions(), now: 1_773_150_000).contains("Fleet:"))
    }
}
