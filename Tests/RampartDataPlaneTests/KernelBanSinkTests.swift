import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing

@testable import RampartCore
@testable import RampartDataPlane

/// The kernel ban sink without a kernel: a recording runner stands for libnftables, and the JSON
/// documents are checked as JSON. (The real table is exercised in KernelBanTests, in a namespace.)
@Suite struct KernelBanSinkTests {
    final class Recorder: NftablesRunner, @unchecked Sendable {
        let name = "recorder"
        let documents = NIOLockedValueBox<[String]>([])
        let failWith: String?
        init(failWith: String? = nil) { self.failWith = failWith }
        func run(_ json: String) -> String? {
            documents.withLockedValue { $0.append(json) }
            return failWith
        }
    }

    static func parse(_ json: String) throws -> [[String: Any]] {
        let root = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        return try #require(root["nftables"] as? [[String: Any]])
    }

    static func waitFor(_ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if condition() { return true }
            usleep(5_000)
        }
        return false
    }

    @Test func theTableDocumentIsOneValidTransaction() throws {
        var config = KernelBanConfig()
        config.kind = .nftables
        let doc = NftablesDocument.table(
            config, ports: [8443, 8080, 8080], capacity: 5000,
            elements: [(IPAddress("192.0.2.1")!, 60), (IPAddress("2001:db8::1")!, 0)]
        )
        let commands = try Self.parse(doc)
        // add + delete + add of the table, two sets, a chain, two rules, two element lists.
        #expect(commands.count == 10)
        #expect(doc.contains(#""hook":"prerouting","prio":-300"#))
        #expect(doc.contains(#""right":{"set":[8080,8443]}"#))
        #expect(doc.contains(#""size":5000"#))
        #expect(doc.contains(#"{"elem":{"val":"192.0.2.1","timeout":60}}"#))
        #expect(doc.contains(#"{"elem":{"val":"2001:db8::1","timeout":1}}"#))  // never a zero timeout
        config.ports = .all
        config.hook = .input
        let all = NftablesDocument.table(config, ports: [8080], capacity: 5000, elements: [])
        #expect(try Self.parse(all).count == 8)
        #expect(!all.contains("dport"))
        #expect(all.contains(#""hook":"input","prio":-150"#))
    }

    @Test func changesGoInBatchesOfAtMostAThousand() throws {
        let recorder = Recorder()
        var config = KernelBanConfig()
        config.kind = .nftables
        let sink = KernelBanSink(config: config, capacity: 100_000, logger: Logger(label: "test"), runner: recorder)
        let started = NIOLockedValueBox<String??>(nil)
        sink.start(ports: [8080], bans: []) { error in started.withLockedValue { $0 = .some(error) } }
        #expect(Self.waitFor { started.withLockedValue { $0 } != nil })
        #expect(started.withLockedValue { $0 } == .some(nil))
        for i in 0..<2500 { #expect(sink.offer(.add(IPAddress(v4: 0x0A00_0000 | UInt32(i)), seconds: 60))) }
        sink.offer(.remove(IPAddress("10.0.0.1")!))
        #expect(Self.waitFor { sink.stats.elements == 2501 })
        let docs = recorder.documents.withLockedValue { $0 }
        // The table, then the 2,501 changes in at least three transactions of at most 1,000.
        #expect(docs.count >= 4)
        var changes = 0
        for doc in docs.dropFirst() {
            let commands = try Self.parse(doc)
            let n = commands.filter { ($0["add"] as? [String: Any])?["element"] != nil }.count
            // An addition is add, delete, add; a removal add, delete.
            let deletes = commands.filter { $0["delete"] != nil }.count
            #expect(deletes <= KernelBanSink.maxBatch)
            changes += deletes
            #expect(n >= deletes)
        }
        #expect(changes == 2501)
        #expect(sink.stats.batches == docs.count)
        #expect(sink.stats.errors == 0)
        #expect(sink.stats.active)
        let stopped = NIOLockedValueBox(false)
        sink.stop { stopped.withLockedValue { $0 = true } }
        #expect(Self.waitFor { stopped.withLockedValue { $0 } })
        // keep (the default): the table is not deleted on stop.
        #expect(recorder.documents.withLockedValue { $0.count } == docs.count)
        #expect(!sink.offer(.remove(IPAddress("10.0.0.2")!)))
        #expect(sink.stats.dropped == 1)
    }

    @Test func aRefusedTableTurnsTheSinkOffAndFlushDeletesOnStop() {
        let refused = Recorder(failWith: "Error: Could not process rule: Operation not permitted")
        let sink = KernelBanSink(config: KernelBanConfig(), capacity: 1024, logger: Logger(label: "test"), runner: refused)
        let result = NIOLockedValueBox<String??>(nil)
        sink.start(ports: [8080], bans: []) { error in result.withLockedValue { $0 = .some(error) } }
        #expect(Self.waitFor { result.withLockedValue { $0 } != nil })
        #expect(result.withLockedValue { $0 }??.contains("Operation not permitted") == true)
        #expect(!sink.stats.active)
        #expect(sink.stats.errors == 1)

        let recorder = Recorder()
        var config = KernelBanConfig()
        config.onExit = .flush
        let flushing = KernelBanSink(config: config, capacity: 1024, logger: Logger(label: "test"), runner: recorder)
        let ok = NIOLockedValueBox(false)
        flushing.start(ports: [8080], bans: []) { _ in ok.withLockedValue { $0 = true } }
        #expect(Self.waitFor { ok.withLockedValue { $0 } })
        let stopped = NIOLockedValueBox(false)
        flushing.stop { stopped.withLockedValue { $0 = true } }
        #expect(Self.waitFor { stopped.withLockedValue { $0 } })
        #expect(recorder.documents.withLockedValue { $0.last }?.contains(#"{"delete":{"table":{"family":"inet","name":"rampart"}}}]}"#) == true)
    }
}
