import Foundation

/// Renders drill reports as a text table, JSON, and a self-contained HTML page with a chart.
public enum DrillOutput {
    /// One table row per report.
    public static func table(_ reports: [DrillReport], label: String? = nil) -> String {
        var lines: [String] = []
        lines.append("| \(label == nil ? "" : "gateway | ")scenario | legit ok % (warm-up) | legit ok % (attack) | API ok % (attack) | p95 ms (attack) | p99 ms (attack) | challenges (attack) | attack sent | reached origin | leakage after 5 s | engaged after | peak CPU % | CPU µs / attack request | peak RSS MB |")
        lines.append("|\(label == nil ? "" : "---|")---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in reports {
            let engaged = r.engagedAfterSeconds.map { "\($0) s" } ?? "never"
            lines.append(
                "| \(label.map { "\($0) | " } ?? "")\(r.scenario) | \(f(r.warmup.successPercent)) | \(f(r.attackWindow.successPercent)) | \(f(r.attackWindow.apiSuccessPercent)) | \(f(r.attackWindow.p95ms, 0)) | \(f(r.attackWindow.p99ms, 0)) | \(r.attackWindow.challengesSeen) | \(r.attackSent) | \(r.attackReachedOrigin) | \(f(r.leakageAfter5sPercent))% | \(engaged) | \(f(r.gatewayPeakCPUPercent, 0)) | \(r.gatewayCPUMicrosPerAttackRequest.map { f($0, 1) } ?? "-") | \(f(r.gatewayPeakRSSMB, 0)) |"
            )
        }
        return lines.joined(separator: "\n")
    }

    /// One row per legitimate class and report, over the attack window.
    public static func classTable(_ reports: [DrillReport], label: String? = nil) -> String {
        var lines = ["| \(label == nil ? "" : "gateway | ")scenario | class | requests | ok % | ok within 1 s % | 403 |"]
        lines.append("|\(label == nil ? "" : "---|")---|---|---:|---:|---:|---:|")
        for r in reports {
            for c in r.classes {
                lines.append("| \(label.map { "\($0) | " } ?? "")\(r.scenario) | \(c.name) | \(c.requests) | \(f(c.successPercent)) | \(f(c.within1sPercent)) | \(c.forbidden) |")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// The reports as pretty JSON.
    public static func json(_ reports: [DrillReport]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return (try? encoder.encode(reports)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
    }

    /// A self-contained HTML report (no external assets): the table and a per-second SVG chart per
    /// scenario of legit successes, attack requests sent, and attack requests reaching the origin.
    public static func html(_ reports: [DrillReport], title: String) -> String {
        var body = "<h1>\(escape(title))</h1>\n"
        body += "<pre>\(escape(table(reports)))</pre>\n"
        for r in reports {
            body += "<h2>\(r.scenario): \(escape(r.summary))</h2>\n" + chart(r)
        }
        return """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}pre{background:#f6f6f6;padding:1em;overflow:auto}
            .legend span{margin-right:1.5em}</style></head><body>
            \(body)
            <p class="legend"><span style="color:#2a7">&#9632; legit page views ok</span><span style="color:#c33">&#9632; attack sent</span>\
            <span style="color:#36c">&#9632; attack reaching the origin</span></p></body></html>

            """
    }

    static func chart(_ r: DrillReport) -> String {
        let w = 800.0
        let h = 200.0
        let n = max(1, r.timeline.count)
        let peak = Double(max(1, r.timeline.map { max($0.attackSent, $0.legitOK, $0.originAttack) }.max() ?? 1))
        func line(_ values: [Int], _ color: String) -> String {
            let points = values.enumerated().map { i, v in
                "\(f(Double(i) * w / Double(n), 1)),\(f(h - Double(v) * h / peak, 1))"
            }.joined(separator: " ")
            return "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"/>"
        }
        return """
            <svg viewBox="0 0 \(Int(w)) \(Int(h))" width="100%" role="img" aria-label="requests per second">\
            <rect width="\(Int(w))" height="\(Int(h))" fill="#fff" stroke="#ccc"/>\
            \(line(r.timeline.map(\.legitOK), "#2a7"))\(line(r.timeline.map(\.attackSent), "#c33"))\(line(r.timeline.map(\.originAttack), "#36c"))\
            </svg><p>peak \(Int(peak)) requests/s; one point per second</p>

            """
    }

    static func f(_ v: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", v) }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
