/// The NIS2 Art. 23(4) stage a report answers.
package enum ReportStage: String, Sendable, Equatable, CaseIterable, Codable {
    /// Art. 23(4)(a): within 24 hours of becoming aware.
    case earlyWarning = "early-warning"
    /// Art. 23(4)(b): within 72 hours of becoming aware.
    case notification
    /// Art. 23(4)(d): within one month of the incident notification.
    case final

    /// The stage's title with the paragraph it answers.
    package var title: String {
        switch self {
        case .earlyWarning: return "Early warning (NIS2 Art. 23(4)(a))"
        case .notification: return "Incident notification (NIS2 Art. 23(4)(b))"
        case .final: return "Final report (NIS2 Art. 23(4)(d))"
        }
    }

    /// True from the incident notification on: figures, indicators of compromise and the series.
    package var hasAssessment: Bool { self != .earlyWarning }
}
