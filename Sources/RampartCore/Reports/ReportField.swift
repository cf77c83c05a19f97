/// A value only a person can give (financial impact, cross-border judgement, sign-off...): it stays
/// an explicit blank, marked for the operator, unless the config supplies it.
package struct ReportField: Sendable, Equatable, Codable {
    /// The value, nil while it is to be filled in.
    package var value: String?
    /// True when a person must fill it in before sending.
    package var toFill: Bool
    /// What to write there.
    package var hint: String

    /// A blank for a person, with what to write.
    package static func blank(_ hint: String) -> ReportField { ReportField(value: nil, toFill: true, hint: hint) }
    /// A value the config supplied.
    package static func given(_ value: String, _ hint: String) -> ReportField { ReportField(value: value, toFill: false, hint: hint) }
}
