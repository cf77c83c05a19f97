import RampartCore

/// `replay-log`: access-log text through the parser `rampart replay` reads logs with, and the
/// parsed records through the replay itself.
enum ReplayLogTarget {
    /// The registry entry.
    static let target = FuzzTarget(
        name: "replay-log",
        property: "every line parses or is skipped without a crash; a record's address, method, target and agent come from its line; a short log (one input in eight) replays to a report that counts every record",
        run: run
    )

    /// The longest span of log time (seconds) replayed per input: the replay walks every second of
    /// the span, so longer spans only cost time.
    static let maxReplaySpan: Int64 = 10

    /// Checks one input: the text of an access log.
    static func run(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        var records: [LogRecord] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let record = LogRecord.nginxCombined(line) else { continue }
            let context = "line \(line.debugDescription) gave \(record)"
            FuzzCheck.require(line.hasPrefix(record.client.description) || IPAddress(line.prefix { $0 != " " }) == record.client, "address not from the line: \(context)")
            FuzzCheck.require(!record.method.isEmpty && !record.method.contains(" "), "method with a space or empty: \(context)")
            FuzzCheck.require(!record.target.isEmpty && !record.target.contains(" "), "target with a space or empty: \(context)")
            // (`contains("")` is false in Swift: an empty agent is trivially from the line.)
            FuzzCheck.require(
                line.contains(record.method) && line.contains(record.target) && (record.agent.isEmpty || line.contains(record.agent)),
                "field not from the line: \(context)"
            )
            records.append(record)
        }
        // A replay builds the site's full rate-limit and ban tables (milliseconds per input against
        // microseconds for the parser): one input in eight, by length, is replayed so the parser
        // keeps its speed and the replay still meets every kind of record.
        guard bytes.count % 8 == 0, let first = records.map(\.time).min(), let last = records.map(\.time).max() else { return }
        let (span, overflow) = last.subtractingReportingOverflow(first)
        guard !overflow, span <= maxReplaySpan else { return }
        let report = Replay.run(records)
        FuzzCheck.require(report.requests == records.count, "replay counted \(report.requests) of \(records.count) records")
        FuzzCheck.require(report.firstTime == first && report.lastTime == last, "replay span \(report.firstTime)...\(report.lastTime), records \(first)...\(last)")
        FuzzCheck.require(report.limited + report.refusedBanned <= records.count, "more refusals than records: \(report.limited) + \(report.refusedBanned)")
    }
}
