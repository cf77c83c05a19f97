import Foundation

/// A report as one printable HTML page: inline CSS, inline SVG charts, no script and no external
/// asset, every text escaped. Blanks for the operator are dashed boxes that print as such.
package enum ReportHTML {
    /// `text` safe in HTML element content and quoted attribute values.
    package static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                // Control characters other than tab and newline have no business in a report.
                if c.value < 0x20 && c != "\t" && c != "\n" { out += "\u{FFFD}" } else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }

    static let style = """
    body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#111;line-height:1.4}
    h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;border-bottom:2px solid #333;padding-bottom:.2rem;margin-top:2rem}
    h3{font-size:1rem;margin-bottom:.3rem}table{border-collapse:collapse;width:100%;margin:.5rem 0}
    th,td{border:1px solid #bbb;padding:.25rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}th{background:#eee;width:35%}
    td.n{text-align:right;font-variant-numeric:tabular-nums}.blank{border:2px dashed #c00;padding:.4rem;min-height:1.5rem;color:#a00;background:#fff8f8}
    .meta{color:#555}.grid{display:grid;grid-template-columns:1fr 1fr;gap:1rem}.chart{width:100%;height:auto;border:1px solid #ccc}
    code{word-break:break-all}.legend span{display:inline-block;margin-right:1rem}.sw{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
    @media print{body{margin:0;max-width:none}h2{break-after:avoid}table,svg{break-inside:avoid}}
    """

    /// The page of `r`.
    package static func render(_ r: IncidentReport) -> String {
        var h = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">"
        h += "<title>\(escape("\(r.stageTitle): incident #\(r.incident.id) on \(r.incident.site)"))</title><style>\(style)</style></head><body>\n"
        h += "<h1>\(escape(r.stageTitle))</h1>\n"
        h += "<p class=\"meta\">Rampart incident #\(r.incident.id) on site <b>\(escape(r.incident.site))</b> · generated \(escape(r.generatedAt)) · \(escape(r.schema))</p>\n"
        h += "<p>Fields in dashed red boxes are for a person to fill in before sending; Rampart never guesses them.</p>\n"

        h += "<h2>Reporting entity</h2>\n<table>"
        h += row("Organisation", field(r.reporter.organisation)) + row("NIS2 sector", field(r.reporter.sector)) + row("Contact", field(r.reporter.contact))
        h += "</table>\n"

        h += "<h2>Incident and deadlines</h2>\n<table>"
        h += row("Awareness (first escalation)", escape(r.incident.awareness))
        h += row("Status", escape(r.incident.status) + (r.incident.end.map { " (ended \(escape($0)))" } ?? ""))
        h += row("Duration", "\(r.incident.durationSeconds) s")
        h += row("Highest mode", escape(r.incident.peakMode.replacingOccurrences(of: "_", with: " ")))
        h += row("Early warning due (24 h, Art. 23(4)(a))", escape(r.deadlines.earlyWarning))
        h += row("Incident notification due (72 h, Art. 23(4)(b))", escape(r.deadlines.notification))
        h += row("Final report due (1 month after the notification, Art. 23(4)(d))", escape(r.deadlines.finalReport))
        h += "</table>\n"

        if let f = r.fleet {
            h += "<h2>Fleet: one incident over \(f.nodes.count) node\(f.nodes.count == 1 ? "" : "s")</h2>\n"
            h += "<p>Fleet incident \(f.id) on site <b>\(escape(f.site))</b>, from \(escape(ReportTime.rfc3339(f.start)))\(f.end.map { " to \(escape(ReportTime.rfc3339($0)))" } ?? " (open)"). Each node's own traffic; the figures above are this node's view, which adds the other nodes' counts up for detection.</p>\n"
            h += "<table><tr><th>Node</th><th>Its incident</th><th>Peak requests/s</th><th>Requests</th><th>Refused</th><th>Challenged</th><th>To origin</th><th>Top sources</th></tr>"
            for n in f.nodes + [f.total] {
                let sources = n.topSources.map { "<code>\(escape($0.key))</code> \($0.count)" }.joined(separator: ", ")
                h += "<tr><td>\(escape(n.node))</td><td>\(n.node == "fleet" ? "" : "#\(n.incident)")</td><td>\(n.peakRequestsPerSecond)</td><td>\(n.requests)</td><td>\(n.refused)</td><td>\(n.challenged)</td><td>\(n.toOrigin)</td><td>\(sources)</td></tr>"
            }
            h += "</table>\n"
        }

        h += "<h2>Early warning</h2>\n<p>\(escape(r.earlyWarning.summary))</p>\n<table>"
        h += row("Suspected unlawful or malicious act", r.earlyWarning.suspectedMalicious ? "Yes, by the gateway's detection" : "Not by the gateway's detection (an operator escalated)")
        h += row("Evidence", "<ul>" + r.earlyWarning.evidence.map { "<li>\(escape($0))</li>" }.joined() + "</ul>")
        h += row("Confirmed by the entity", field(r.earlyWarning.maliciousConfirmed))
        h += row("Possible cross-border impact", field(r.earlyWarning.crossBorderImpact))
        h += "</table>\n"

        if let a = r.assessment {
            let f = a.figures
            h += "<h2>Initial assessment: severity and impact</h2>\n<table>"
            h += row("Affected sites", escape(a.affectedSites.joined(separator: ", ")))
            h += row("Peak request rate", "\(f.peakRequestsPerSecond) requests/s" + (f.peakTime.map { " at \(escape($0))" } ?? "") + ", about \(f.peakDistinctSources) distinct sources")
            h += row("Total requests", "\(f.totalRequests) (mean \(String(format: "%.1f", f.meanRequestsPerSecond)) requests/s)")
            h += row("Refused", "\(f.refused) (\(percent(f.refusedShare))): rate limits \(f.limited)" + optional(", origin queue full ", f.shed) + optional(", clearance over its limit ", f.clearanceLimited))
            h += row("Challenged", "\(f.challenged) (\(percent(f.challengedShare)))")
            h += row("Served (origin or cache)", "\(f.toOrigin + f.cacheServed) (\(percent(f.servedShare))): origin \(f.toOrigin), cache \(f.cacheServed)")
            h += row("Challenge pass rate (cleared / challenged)", f.challengePassRate.map { String(format: "%.2f", $0) } ?? "no challenge issued")
            h += row("Origin latency at the peak", f.originLatencyAtPeakMillis.map { String(format: "%.1f ms", $0) } ?? "not recorded")
            h += row("Origin queue at the peak", f.originQueueAtPeak.map { "\($0) requests waiting" } ?? "not recorded")
            h += row("Origin errors", f.originErrors.map(String.init) ?? "not recorded")
            h += row("Bans issued", f.bansIssued.map(String.init) ?? "not recorded")
            h += row("Severity of the impact", field(a.severity))
            h += row("Impact beyond the web service", field(a.impactBeyondWebService))
            h += "</table>\n"
            if let s = r.series, !s.points.isEmpty { h += charts(s) }
        }

        if let ind = r.indicators {
            h += "<h2>Indicators of compromise</h2>\n<p>Sources shown as: <b>\(escape(ind.sourceDisclosure.rawValue))</b> (config key <code>reports.sources</code>). Sources and subnets are the heaviest among the requests the defence refused, never the busiest of all traffic. Paths, agents and fingerprints are sampled (one request in eight), so their counts are estimates. Sources and subnets are listed only with at least \(ind.heavySourceThreshold) requests over the incident (\(ind.sourcesNotListed) left out).</p>\n"
            h += "<div class=\"grid\">"
            h += top("Top sources", ind.sources) + top("Top subnets", ind.subnets) + top("JA4 fingerprints", ind.fingerprints)
            h += top("User agents", ind.userAgents) + top("Paths", ind.paths)
            h += ind.topCountries.map { top("Countries", $0) } ?? "<div><h3>Countries</h3><p>not configured (GeoIP)</p></div>"
            h += ind.topNetworks.map { top("Networks", $0) } ?? "<div><h3>Networks</h3><p>not configured (GeoIP)</p></div>"
            h += "</div>\n"
        }

        if let t = r.timeline {
            h += "<h2>Timeline: modes, bans and operator actions</h2>\n<table><tr><th>Time</th><th>What</th></tr>"
            for e in t {
                h += "<tr><td>\(escape(e.time))</td><td>[\(escape(e.kind))] \(escape(e.text))\(e.address.map { " <code>\(escape($0))</code>" } ?? "")</td></tr>"
            }
            h += "</table>\n"
            if let n = r.eventsNotKept, n > 0 { h += "<p>\(n) further events were not kept (bounded list).</p>\n" }
        }

        if let fin = r.final {
            h += "<h2>Final report</h2>\n"
            if fin.ongoing { h += "<p class=\"blank\">The incident is still open: send a progress report now (Art. 23(4)(e)) and the final report within one month of its end.</p>" }
            h += "<table>"
            h += row("Detailed description", escape(fin.description))
            h += row("Type of threat", escape(fin.threatType))
            h += row("Likely root cause", escape(fin.rootCause))
            h += row("Mitigations applied", "<ul>" + fin.mitigations.map { "<li>\(escape($0))</li>" }.joined() + "</ul>")
            h += row("Cross-border impact", field(fin.crossBorderImpact))
            h += row("Financial impact", field(fin.financialImpact))
            h += row("Sign-off", field(fin.signOff))
            h += "</table>\n"
        }
        h += "</body></html>\n"
        return h
    }

    static func row(_ label: String, _ html: String) -> String { "<tr><th>\(escape(label))</th><td>\(html)</td></tr>" }

    static func optional(_ label: String, _ n: Int?) -> String { n.map { "\(label)\($0)" } ?? "" }

    static func field(_ f: ReportField) -> String {
        if let v = f.value { return escape(v) }
        return "<div class=\"blank\">To be filled by the operator: \(escape(f.hint))</div>"
    }

    static func top(_ title: String, _ entries: [TopEntry]) -> String {
        var h = "<div><h3>\(escape(title))</h3>"
        if entries.isEmpty { return h + "<p>none recorded</p></div>" }
        h += "<table>"
        for e in entries { h += "<tr><td><code>\(escape(e.key.isEmpty ? "(empty)" : e.key))</code></td><td class=\"n\">\(e.count)</td></tr>" }
        return h + "</table></div>"
    }

    /// Two charts: requests and what became of them, and the origin's latency and queue.
    static func charts(_ s: ReportSeries) -> String {
        let pts = s.points
        let w = 900.0, hgt = 260.0, left = 60.0, bottom = 30.0, top = 10.0, right = 10.0
        let t0 = Double(pts.first!.time), t1 = Double(pts.last!.time + Int64(s.stepSeconds))
        let span = max(1, t1 - t0)
        func x(_ t: Int64) -> Double { left + (Double(t) - t0) / span * (w - left - right) }
        func chart(title: String, series: [(String, String, (SeriesPoint) -> Double)], unit: String) -> String {
            let maxY = max(1, series.flatMap { sr in pts.map { sr.2($0) } }.max() ?? 1)
            func y(_ v: Double) -> Double { top + (1 - v / maxY) * (hgt - top - bottom) }
            var g = "<h3>\(escape(title))</h3><svg class=\"chart\" viewBox=\"0 0 \(Int(w)) \(Int(hgt))\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"\(escape(title))\">"
            g += "<rect x=\"0\" y=\"0\" width=\"\(Int(w))\" height=\"\(Int(hgt))\" fill=\"#fff\"/>"
            for k in 0...4 {
                let v = maxY * Double(k) / 4
                let yy = y(v)
                g += "<line x1=\"\(left)\" y1=\"\(f1(yy))\" x2=\"\(w - right)\" y2=\"\(f1(yy))\" stroke=\"#ddd\"/>"
                g += "<text x=\"\(left - 5)\" y=\"\(f1(yy + 4))\" font-size=\"11\" text-anchor=\"end\">\(f1(v))</text>"
            }
            g += "<text x=\"\(left)\" y=\"\(hgt - 8)\" font-size=\"11\">\(escape(ReportTime.rfc3339(pts.first!.time)))</text>"
            g += "<text x=\"\(w - right)\" y=\"\(hgt - 8)\" font-size=\"11\" text-anchor=\"end\">\(escape(ReportTime.rfc3339(pts.last!.time))) (\(s.stepSeconds) s per point, \(escape(unit)))</text>"
            for (_, color, value) in series {
                let coords = pts.map { "\(f1(x($0.time))),\(f1(y(value($0))))" }.joined(separator: " ")
                g += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(coords)\"/>"
            }
            g += "</svg><p class=\"legend\">" + series.map { "<span><i class=\"sw\" style=\"background:\($0.1)\"></i>\(escape($0.0))</span>" }.joined() + "</p>"
            return g
        }
        let step = Double(s.stepSeconds)
        var out = chart(title: "Requests per second and what became of them", series: [
            ("received", "#1f4e9c", { Double($0.requests) / step }),
            ("refused", "#c00000", { Double($0.refused) / step }),
            ("challenged", "#e08000", { Double($0.challenged) / step }),
            ("to origin", "#2a8a2a", { Double($0.toOrigin) / step }),
            ("from cache", "#7a4fb0", { Double($0.cacheServed) / step }),
        ], unit: "requests/s")
        out += chart(title: "Origin: mean latency and queue", series: [
            ("latency (ms)", "#1f4e9c", { $0.meanLatencyMillis }),
            ("queue (requests waiting)", "#c00000", { Double($0.originQueue) }),
        ], unit: "ms and requests")
        return out
    }

    static func f1(_ v: Double) -> String { String(format: "%.1f", v) }
}
