import Foundation

extension IncidentReport {
    /// Builds the report of `incident` at `stage` and renders it as `format`: the one entry point
    /// the admin API and the CLI share.
    package static func render(
        _ incident: Incident, stage: ReportStage, format: ReportFormat, options: ReportOptions, now: Int64,
        countries: [TopEntry]? = nil, networks: [TopEntry]? = nil
    ) throws(ReportError) -> String {
        let report = try build(incident, stage: stage, options: options, now: now, countries: countries, networks: networks)
        switch format {
        case .html: return ReportHTML.render(report)
        case .json: return report.jsonText()
        case .stix: return StixBundle.render(report, incident: incident, now: now)
        case .misp: return MispEvent.render(report, incident: incident, now: now)
        }
    }

    /// The report as JSON with snake_case keys, sorted.
    package func jsonText() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
