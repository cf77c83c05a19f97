import Logging
import NIOCore
import NIOConcurrencyHelpers
import NIOEmbedded
import Testing

@testable import RampartCore
@testable import RampartDataPlane

/// A ban store in memory, standing for SQLite behind the data plane's `BanStore` protocol.
final class MemoryBanStore: BanStore {
    private let bans = NIOLockedValueBox<[String: BanRecord]>([:])

    init(_ records: [BanRecord] = []) {
        bans.withLockedValue { for r in records { $0[r.address] = r } }
    }

    func saveBan(_ ban: BanRecord) { bans.withLockedValue { $0[ban.address] = ban } }
    func removeBan(address: String) { _ = bans.withLockedValue { $0.removeValue(forKey: address) } }
    func activeBans(now: Int64) throws -> [BanRecord] { bans.withLockedValue { Array($0.values.filter { $0.until > now }) } }
    var all: [String: BanRecord] { bans.withLockedValue { $0 } }
}

/// Bans on the accept loop, on virtual time: issued, refused at accept, expired, stored and
/// restored through the store protocol.
@Suite struct BanExpiryTests {
    final class Bench {
        let server = EmbeddedChannel()
        let loop: LoopContext
        let registry: BanRegistry
        let gate: AcceptGate

        init(store: MemoryBanStore, duration: TimeAmount = .seconds(60)) throws {
            let config = PipelineHarness.config { $0.bans.duration = duration }
            loop = LoopContext(
                eventLoop: server.embeddedEventLoop, loopCount: 1, config: try RuntimeConfig(config, generation: 1), logger: Logger(label: "test"),
                secret: [UInt8](repeating: 7, count: 32)
            )
            registry = BanRegistry(policy: config.bans, loop: loop, store: store)
            gate = AcceptGate(limits: config.listeners[0].limits, proxyProtocol: false, loop: loop, bans: registry, listener: 0)
            try server.pipeline.syncOperations.addHandler(gate)
            server.localAddress = try SocketAddress(ipAddress: "127.0.0.1", port: 8080)
            server.pipeline.fireChannelActive()
        }

        /// Accepts a connection from `peer`; true when the gate let it in.
        func admits(_ peer: String) throws -> Bool {
            let child = EmbeddedChannel(loop: server.embeddedEventLoop)
            try child.connect(to: SocketAddress(ipAddress: peer, port: 40000)).wait()
            try server.writeInbound(child as any Channel)
            let passed = try server.readInbound(as: (any Channel).self) != nil
            server.embeddedEventLoop.run()
            return passed && child.isActive
        }

        func advance(_ t: TimeAmount) { server.embeddedEventLoop.advanceTime(by: t) }
    }

    @Test func aBannedSourceIsRefusedAtAcceptUntilTheBanExpires() throws {
        let store = MemoryBanStore()
        let bench = try Bench(store: store, duration: .seconds(60))
        let source = IPAddress("203.0.113.5")!
        #expect(try bench.admits("203.0.113.5"))
        bench.registry.ban(source, reason: "rate_limited")
        #expect(try !bench.admits("203.0.113.5"))
        #expect(try bench.admits("203.0.113.6"))
        #expect(store.all["203.0.113.5"]?.reason == "rate_limited")

        bench.advance(.seconds(59))
        #expect(try !bench.admits("203.0.113.5"))
        bench.advance(.seconds(2))
        #expect(try bench.admits("203.0.113.5"))

        // A repeat offender is banned for twice as long.
        bench.registry.ban(source, reason: "rate_limited")
        bench.advance(.seconds(61))
        #expect(try !bench.admits("203.0.113.5"))
        bench.advance(.seconds(60))
        #expect(try bench.admits("203.0.113.5"))
    }

    @Test func anOperatorsUnbanLetsTheSourceInAndForgetsTheStoredBan() throws {
        let store = MemoryBanStore()
        let bench = try Bench(store: store)
        let source = IPAddress("198.51.100.9")!
        bench.registry.ban(source, length: .hours(1), reason: "operator")
        #expect(try !bench.admits("198.51.100.9"))
        #expect(bench.registry.unban(source))
        #expect(try bench.admits("198.51.100.9"))
        #expect(store.all["198.51.100.9"] == nil)
        #expect(!bench.registry.unban(source))
    }

    /// Bans in force survive a restart: the stored ones still running are put back with the
    /// time they have left; expired ones are not.
    @Test func storedBansAreRestoredWithTheTimeTheyHaveLeft() throws {
        let now = unixNow()
        let store = MemoryBanStore([
            BanRecord(address: "192.0.2.1", until: now + 30, level: 1, reason: "rate_limited", created: now - 30),
            BanRecord(address: "192.0.2.2", until: now - 1, level: 0, reason: "old", created: now - 100),
        ])
        let bench = try Bench(store: store)
        #expect(try !bench.admits("192.0.2.1"))
        #expect(try bench.admits("192.0.2.2"))
        bench.advance(.seconds(31))
        #expect(try bench.admits("192.0.2.1"))
    }
}
