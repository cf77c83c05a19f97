import RampartCore

/// `config`: arbitrary text through the YAML config loader (`rampart check`, `rampart run --config`).
enum ConfigTarget {
    /// The registry entry.
    static let target = FuzzTarget(
        name: "config",
        property: "the loader returns a config or a non-empty list of issues, each with a message and a position inside the text, and gives the same config or issue keys the second time",
        run: run
    )

    /// Checks one input: a config file's text.
    static func run(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        // The loader reads the files a config names (token, certificates, CA); a device or a proc
        // file there (/dev/zero, /dev/stdin) blocks or fills memory by design, not by a parser bug.
        guard !text.contains("/dev/"), !text.contains("/proc/"), !text.contains("/sys/") else { return }
        let first = load(text)
        switch first {
        case .success:
            break
        case .failure(let error):
            FuzzCheck.require(!error.issues.isEmpty, "the loader failed without an issue")
            let lines = lineBreaks(in: text) + 1
            for issue in error.issues {
                FuzzCheck.require(!issue.message.isEmpty, "an issue without a message: \(issue)")
                FuzzCheck.require(issue.file == "fuzz.yaml", "an issue names another file: \(issue)")
                FuzzCheck.require(issue.line >= 0 && issue.line <= lines + 1 && issue.column >= 0, "an issue outside the \(lines)-line text: \(issue)")
            }
        }
        // The same verdict, config and issue keys. Not the messages: Yams names a duplicate key's
        // position from a hash-ordered set, so that text may differ between two loads.
        let second = load(text)
        FuzzCheck.require(
            verdict(second) == verdict(first), "loading the same text twice gave different answers: \(describe(first)) then \(describe(second))"
        )
    }

    /// At least as many line breaks as YAML sees in `text`: LF, CR, NEL, LS and PS each count one
    /// (CRLF counts two: the bound only has to be high enough).
    static func lineBreaks(in text: String) -> Int {
        text.unicodeScalars.reduce(0) { count, scalar in
            switch scalar {
            case "\n", "\r", "\u{85}", "\u{2028}", "\u{2029}": return count + 1
            default: return count
            }
        }
    }

    /// What must not change between two loads of one text: the config, or the issues' count and keys.
    static func verdict(_ result: Result<GatewayConfig, ConfigError>) -> Result<GatewayConfig, IssueKeys> {
        result.mapError { IssueKeys(keys: $0.issues.map(\.key)) }
    }

    /// The keys of a load's issues, in order.
    struct IssueKeys: Error, Equatable {
        /// One key per issue.
        var keys: [String]
    }

    /// An answer in a few lines, for a violation message: the issues, or that a config came back.
    static func describe(_ result: Result<GatewayConfig, ConfigError>) -> String {
        switch result {
        case .success: return "a config"
        case .failure(let error): return "\(error.issues.count) issues [\(error.description.prefix(2000))]"
        }
    }

    /// The loader's answer as a `Result`.
    static func load(_ text: String) -> Result<GatewayConfig, ConfigError> {
        Result { () throws(ConfigError) in try ConfigLoader.load(yaml: text, file: "fuzz.yaml") }
    }
}

