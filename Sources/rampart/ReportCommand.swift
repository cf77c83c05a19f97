import ArgumentParser
import Foundation
import Logging
import RampartCore
import RampartState

/// `rampart report`: a NIS2 incident report (HTML, JSON, STIX 2.1 or MISP) from a running gateway's
/// admin API, or offline from its state folder.
struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a NIS2 incident report (early warning, notification or final) as HTML, JSON, STIX 2.1 or MISP.",
        discussion: """
            Online (default) the report comes from a running gateway's admin API; when no gateway answers and \
            --state holds a state.sqlite, it is read instead. With --offline it is always built from the state \
            folder's state.sqlite (--state), with reports.* taken from --config if given.
            """
    )

    @OptionGroup var options: AdminOptions
    @Argument(help: "Incident number (see `rampart incidents`).") var incident: Int
    @Option(name: .long, help: "html, json, stix or misp.") var format: String = "html"
    @Option(name: .long, help: "early-warning, notification or final.") var stage: String = "notification"
    @Option(name: .long, help: "Write to this file (mode 0600) instead of standard output.") var output: String?
    @Flag(name: .long, help: "Read the state folder (--state) instead of calling the gateway.") var offline = false
    @Option(name: .long, help: "Config file whose reports: section to use offline (default: the built-in defaults).") var config: String?
    @Option(name: .long, help: "Offline: how attack sources appear, full, subnet or hashed (default: the config's reports.sources, else full).")
    var sources: String?

    func validate() throws {
        guard ReportFormat(rawValue: format) != nil else { throw ValidationError("--format must be html, json, stix or misp") }
        guard ReportStage(rawValue: stage) != nil else { throw ValidationError("--stage must be early-warning, notification or final") }
        guard incident > 0 else { throw ValidationError("the incident number must be positive") }
        if config != nil, !offline { throw ValidationError("--config is read only with --offline (online, the gateway's own config applies)") }
        if let sources {
            guard SourceDisclosure(rawValue: sources) != nil else { throw ValidationError("--sources must be full, subnet or hashed") }
            guard offline else { throw ValidationError("--sources applies with --offline (online, the gateway's reports.sources applies)") }
        }
    }

    func run() async throws {
        let format = ReportFormat(rawValue: format)!
        let stage = ReportStage(rawValue: stage)!
        let text: String
        if offline {
            text = try offlineReport(format: format, stage: stage)
        } else {
            do {
                text = try await onlineReport(format: format, stage: stage)
            } catch let error as ValidationError where Self.unreachable(error) && FileManager.default.isReadableFile(atPath: database(options.state)) {
                // No gateway to ask, but its state folder is here: the incidents are in it.
                printErr("\(error.message); reading \(database(options.state)) instead")
                text = try offlineReport(format: format, stage: stage)
            }
        }
        guard let output else {
            FileHandle.standardOutput.write(Data(text.utf8))
            return
        }
        // Reports name attack sources: owner-only, like the state folder they come from.
        guard FileManager.default.createFile(atPath: output, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ValidationError("cannot write '\(output)'")
        }
        // An existing file keeps its mode through createFile on some platforms: set it again.
        try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: output)
        printErr("wrote \(format.fileName(incident: incident, stage: stage)) to \(output) (\(text.utf8.count) bytes)")
    }

    /// True for the errors that mean no gateway answered (as opposed to one that refused).
    static func unreachable(_ error: ValidationError) -> Bool {
        error.message.hasPrefix("cannot reach the gateway") || error.message.hasPrefix("no admin token")
    }

    /// The state database in `folder`.
    private func database(_ folder: String) -> String { (folder as NSString).appendingPathComponent("state.sqlite") }

    private func onlineReport(format: ReportFormat, stage: ReportStage) async throws -> String {
        let (status, data) = try await options.call("GET", "/api/incidents/\(incident)/report?format=\(format.rawValue)&stage=\(stage.rawValue)")
        guard status == 200 else {
            let message = (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["error"] as? String ?? "HTTP \(status)"
            throw ValidationError("the gateway at \(options.admin): \(message)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    private func offlineReport(format: ReportFormat, stage: ReportStage) throws -> String {
        var reports = ReportConfig()
        var folder = options.state
        if let config {
            do {
                let loaded = try ConfigLoader.load(path: config)
                reports = loaded.reports
                if folder == "rampart-state" { folder = loaded.statePath }
            } catch {
                printErr(error.description)
                throw ExitCode(2)
            }
        }
        if let sources, let mode = SourceDisclosure(rawValue: sources) {
            reports.sources = mode
        } else if config == nil {
            printErr("no --config: sources are shown in full (reports.sources default); give --config or --sources subnet|hashed to match the gateway's setting")
        }
        let database = database(folder)
        guard FileManager.default.isReadableFile(atPath: database) else {
            throw ValidationError("no readable state database at \(database): point --state at the gateway's state folder")
        }
        var logger = Logger(label: "rampart-report")
        logger.logLevel = .error
        let store: StateStore
        let found: Incident?
        do {
            store = try StateStore(folder: folder, logger: logger)
            found = try store.incident(id: incident)
        } catch {
            throw ValidationError("cannot read \(database): \(error)")
        }
        guard let found else { throw ValidationError("no incident #\(incident) in \(database)") }
        var hashKey: ReportOptions? = nil
        if reports.sources == .hashed {
            let path = (folder as NSString).appendingPathComponent(signingKeyFileName)
            guard let data = FileManager.default.contents(atPath: path), data.count >= 16 else {
                throw ValidationError("reports.sources is hashed but \(path) cannot be read (the pseudonyms are keyed by it)")
            }
            hashKey = ReportOptions(config: reports, hashKey: ReportOptions.hashKey(fromSigningSecret: Array(data)))
        }
        do {
            return try IncidentReport.render(
                found, stage: stage, format: format, options: hashKey ?? ReportOptions(config: reports), now: Int64(Date().timeIntervalSince1970)
            )
        } catch {
            throw ValidationError("\(error)")
        }
    }
}
