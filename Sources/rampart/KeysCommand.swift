import ArgumentParser
import Foundation
import RampartAdmin
import RampartCore

/// `rampart keys`: the secrets in the state folder.
struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the secrets in the state folder (the signing key, the generated admin token).",
        subcommands: [Rotate.self]
    )

    /// `rampart keys rotate`: a new signing key (and, when asked, a new generated admin token), for
    /// when the old one leaked or may have. A leaked signing key lets anyone mint clearance cookies
    /// offline, so it is replaced, never reused.
    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace the signing key (and with --admin-token the generated admin token) with fresh random ones.",
            discussion: """
                Writes 32 new random bytes to STATE/signing.key (mode 0600, atomically). Clearance \
                cookies, challenges and tickets signed with the old key stop working: visitors pass \
                one more challenge. A running gateway reads the key at start only: restart it \
                (SIGHUP does not re-read the key). Nodes of a fleet share one key: copy the new file \
                to each node, then restart them.
                """
        )

        /// The state folder whose keys to replace.
        @Option(name: .long, help: "State folder of the gateway (default: the config's state, else rampart-state).")
        var state: String?

        /// A config file naming the state folder (its `state:`), when `--state` is not given.
        @Option(name: .long, help: "Config file whose state folder to use.")
        var config: String?

        /// Also replace the generated admin token.
        @Flag(name: .long, help: "Also replace STATE/admin.token (the generated admin token).")
        var adminToken = false

        /// Replaces the files and says what was done and what the operator still has to do.
        func run() throws {
            let folder = try stateFolder()
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
                printErr("no state folder at '\(folder)': give --state PATH (or --config FILE) of the gateway whose keys to rotate")
                throw ExitCode(1)
            }
            let keyPath = (folder as NSString).appendingPathComponent(signingKeyFileName)
            do {
                try SecretFile.replace(at: keyPath, with: SecretFile.randomBytes(32))
            } catch {
                printErr("cannot write a new signing key: \(error)")
                throw ExitCode(1)
            }
            say("new signing key in \(keyPath) (32 random bytes, mode 0600)")
            say("clearance cookies, challenges and tickets signed with the old key are no longer accepted: visitors pass one more challenge")
            if adminToken {
                let tokenPath = (folder as NSString).appendingPathComponent(AdminToken.fileName)
                do {
                    try SecretFile.replace(at: tokenPath, with: Array((AdminToken.generate() + "\n").utf8))
                } catch {
                    printErr("cannot write a new admin token: \(error)")
                    throw ExitCode(1)
                }
                say("new admin token in \(tokenPath) (mode 0600); dashboard cookies and scripts with the old token are refused after the restart")
                if let env = ProcessInfo.processInfo.environment[AdminToken.environmentVariable], !env.isEmpty {
                    say("note: \(AdminToken.environmentVariable) is set here; a gateway started with it uses that token, not the file")
                }
            }
            say("restart the running gateway to use \(adminToken ? "them" : "it") (SIGHUP does not re-read the signing key or the admin token)")
        }

        /// `--state`, else the config's `state`, else the default folder.
        func stateFolder() throws -> String {
            if let state { return state }
            if let config {
                do {
                    return try ConfigLoader.load(path: config).statePath
                } catch {
                    printErr(error.description)
                    throw ExitCode(2)
                }
            }
            return GatewayConfig(listeners: [], sites: []).statePath
        }
    }
}
