import Foundation
import RampartCore
import RampartDemoOrigin
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The operator commands against a running gateway, and `replay` on a committed log.
@Suite(.serialized) struct OperatorCLITests {
    static func rampart(_ args: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Binary.rampart)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func modeBanIncidentsAndTopTalkToTheRunningGateway() async throws {
        let (origin, gw, port, admin, token) = try await AdminTests.start()
        defer { Task { await origin.stop() }; gw.stop() }
        let a = ["--admin", "127.0.0.1:\(admin)", "--token", token]

        let (s1, mode) = try Self.rampart(["mode", "www", "under-attack"] + a)
        #expect(s1 == 0 && mode.contains("www: under_attack (forced)"), "\(mode)")
        #expect(eventually { try! RawClient(port: port, source: "127.0.0.70").request("GET", "/", headers: ["User-Agent: Mozilla/5.0"])?.status == 302 })
        #expect(try Self.rampart(["mode", "www", "chaos"] + a).0 != 0)
        #expect(try Self.rampart(["mode", "www", "auto"] + a).0 == 0)

        #expect(try Self.rampart(["ban", "add", "127.0.0.71", "--ttl", "120", "--reason", "cli test"] + a).0 == 0)
        let (_, list) = try Self.rampart(["ban", "list"] + a)
        #expect(list.contains("1 bans in force") && list.contains("127.0.0.71") && list.contains("cli test"), "\(list)")
        #expect(try Self.rampart(["ban", "rm", "127.0.0.71"] + a).0 == 0)
        #expect(try Self.rampart(["ban", "list"] + a).1.contains("0 bans in force"))

        let (_, incidents) = try Self.rampart(["incidents"] + a)
        #expect(incidents.contains("www") && incidents.contains("under_attack"), "\(incidents)")
        let (st, top) = try Self.rampart(["top", "--count", "1"] + a)
        #expect(st == 0 && top.contains("www") && top.contains("REQ/S"), "\(top)")
        // A wrong token is a clear error, not a crash.
        let (sw, wrong) = try Self.rampart(["ban", "list", "--admin", "127.0.0.1:\(admin)", "--token", "wrong-token-000000000"])
        #expect(sw != 0 && wrong.contains("refused the admin token"), "\(wrong)")
    }

    @Test func replayTellsWhenTheModeWouldHaveRisenAndWhomItWouldHaveBanned() throws {
        let log = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("testdata/flood-access.log").path
        let (status, out) = try Self.rampart(["replay", log])
        #expect(status == 0, "\(out)")
        #expect(out.contains("3950 requests from 2026-07-01T10:00:00Z"))
        #expect(out.contains("2026-07-01T10:01:0") && out.contains("normal -> under_attack"), "\(out)")
        #expect(out.contains("ban 203.0.113.66"))
        #expect(out.contains("elevated -> normal"))
        #expect(out.contains("top agents:   Mozilla/5.0 (flood)"))
    }
}
