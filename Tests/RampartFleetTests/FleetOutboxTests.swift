import Foundation
import RampartCore
import Testing

@testable import RampartFleet

@Suite struct FleetOutboxTests {
    static func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("outbox-\(UUID().uuidString).sqlite").path
    }

    @Test func decisionsComeBackInOrderAndSurviveAReopen() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let outbox = try FleetOutbox(path: path, capacity: 100)
        try outbox.append(.ban(address: "192.0.2.1", until: 2_000, reason: "r", by: "operator"), decided: 1_000)
        try outbox.append(.unban(address: "192.0.2.1", by: "operator"), decided: 1_001)
        let reopened = try FleetOutbox(path: path, capacity: 100)
        let entries = try reopened.oldest(10)
        #expect(entries.map(\.decision) == [.ban(address: "192.0.2.1", until: 2_000, reason: "r", by: "operator"), .unban(address: "192.0.2.1", by: "operator")])
        #expect(entries.map(\.decided) == [1_000, 1_001])
        try reopened.remove(upTo: entries[0].id)
        #expect(try reopened.count() == 1)
        #expect(try reopened.oldest(10).map(\.decision) == [.unban(address: "192.0.2.1", by: "operator")])
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
    }

    @Test func aFullOutboxDropsTheOldest() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let outbox = try FleetOutbox(path: path, capacity: 10)
        var dropped = 0
        for i in 0..<25 {
            dropped += try outbox.append(.ban(address: "192.0.2.\(i)", until: 2_000, reason: "", by: "automatic"), decided: Int64(i))
        }
        #expect(try outbox.count() == 10)
        #expect(dropped == 15)
        #expect(try outbox.oldest(1).first?.decision.subject == "192.0.2.15")
    }
}
