import Foundation

/// RFC 3339 times in UTC with milliseconds (`2026-11-27T18:39:16.000Z`), as STIX 2.1 wants.
package enum ReportTime {
    /// `unix` (seconds) as RFC 3339 UTC with milliseconds.
    package static func rfc3339(_ unix: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date(timeIntervalSince1970: TimeInterval(unix)))
    }

    /// `unix` plus one calendar month in UTC (Jan 31 + 1 month = Feb 28/29).
    package static func addingMonth(_ unix: Int64) -> Int64 {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let date = Date(timeIntervalSince1970: TimeInterval(unix))
        return Int64((calendar.date(byAdding: .month, value: 1, to: date) ?? date.addingTimeInterval(30 * 86400)).timeIntervalSince1970)
    }
}
