/// The files a report is rendered to.
package enum ReportFormat: String, Sendable, Equatable, CaseIterable {
    case html
    case json
    case stix
    case misp

    /// The HTTP Content-Type.
    package var contentType: String {
        switch self {
        case .html: return "text/html; charset=utf-8"
        case .json, .misp: return "application/json"
        case .stix: return "application/stix+json;version=2.1"
        }
    }

    /// The file name a download gets, e.g. `rampart-incident-7-notification.stix.json`.
    package func fileName(incident: Int, stage: ReportStage) -> String {
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
