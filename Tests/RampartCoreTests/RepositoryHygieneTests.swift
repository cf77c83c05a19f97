import Foundation
import Testing

/// Nothing secret or stateful is ever tracked by git: signing keys, admin tokens, SQLite databases,
/// logs and state folders. Test fixtures under a `testdata/` folder and fuzz corpora are data.
@Suite struct RepositoryHygieneTests {
    /// The package root (this file is at Tests/RampartCoreTests/).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// True for a tracked path that must never be in git.
    static func isForbidden(_ path: String) -> Bool {
        let components = path.split(separator: "/")
        if components.contains(where: { $0 == "testdata" }) || path.hasPrefix("fuzz/corpus/") { return false }
        let name = components.last.map(String.init) ?? path
        let forbiddenSuffixes = [".key", ".pem", ".token", ".sqlite", ".sqlite-wal", ".sqlite-shm", ".db", ".log", ".p12"]
        if forbiddenSuffixes.contains(where: { name.lowercased().hasSuffix($0) }) { return true }
        if ["signing.key", "admin.token", "state.sqlite"].contains(name) { return true }
        // State folders: the default one and the short names earlier sessions used.
        let stateFolders: Set<Substring> = ["rampart-state", "st", "state"]
        return components.dropLast().contains(where: { stateFolders.contains($0) }) && !path.hasPrefix("Sources/")
    }

    @Test func ruleCatchesTheLeakedFiles() {
        for path in ["st/admin.token", "st/signing.key", "st/state.sqlite", "g.log", "rampart-state/signing.key", "x/y.pem"] {
            #expect(Self.isForbidden(path), "\(path)")
        }
        for path in ["Sources/RampartState/StateStore.swift", "Tests/RampartIntegrationTests/testdata/flood-access.log", "README.md", "fuzz/corpus/proxy/v1"] {
            #expect(!Self.isForbidden(path), "\(path)")
        }
    }

    @Test func noSecretsStateOrLogsAreTracked() throws {
        guard FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(".git").path) else {
            Issue.record("not a git checkout: cannot check what is tracked")
            return
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git", "-C", Self.root.path, "ls-files", "-z"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let tracked = String(decoding: data, as: UTF8.self).split(separator: "\0").map(String.init)
        #expect(tracked.count > 10)
        let forbidden = tracked.filter(Self.isForbidden)
        #expect(forbidden.isEmpty, "tracked secrets, state or logs: \(forbidden)")
    }
}
