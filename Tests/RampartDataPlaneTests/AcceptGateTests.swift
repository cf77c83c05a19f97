import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import RampartCore
@testable import RampartDataPlane

/// The accept gate of a PROXY listener: only peers inside `proxy_protocol_from` get as far as
/// sending a header. Driven through `EmbeddedChannel`s standing for the listening socket and the
/// accepted ones.
@Suite struct AcceptGateTests {
    /// A listening socket's pipeline with the gate, on one embedded loop.
    final class Listener {
        let server = EmbeddedChannel()
        let loop: LoopContext
        let gate: AcceptGate

        init(_ config: GatewayConfig, listener: Int?, bound: String = "127.0.0.1", port: Int = 8080) throws {
            let runtime = try RuntimeConfig(config, generation: 1)
            loop = LoopContext(
                eventLoop: server.embeddedEventLoop, loopCount: 1, config: runtime, logger: Logger(label: "test"),
                secret: [UInt8](repeating: 7, count: 32)
            )
            gate = AcceptGate(limits: config.listeners[0].limits, proxyProtocol: true, loop: loop, listener: listener)
            try server.pipeline.syncOperations.addHandler(gate)
            server.localAddress = try SocketAddress(ipAddress: bound, port: port)
            server.pipeline.fireChannelActive()
        }

        /// Accepts a connection from `peer`; true when the gate passed it on.
        func accept(from peer: String) throws -> (passed: Bool, child: EmbeddedChannel) {
            let child = EmbeddedChannel(loop: server.embeddedEventLoop)
            try child.connect(to: SocketAddress(ipAddress: peer, port: 40000)).wait()
            try server.writeInbound(child as any Channel)
            let passed = try server.readInbound(as: (any Channel).self) != nil
            server.embeddedEventLoop.run()
            return (passed, child)
        }

        var untrusted: Int { loop.counters.rejections[LoopCounters.reasonIndex[.proxyProtocolUntrusted]!] }
    }

    static func config(_ listeners: [(String, Int, [String])]) -> GatewayConfig {
        PipelineHarness.config { c in
            c.listeners = listeners.map { host, port, from in
                var l = ListenerConfig(address: HostPort(host: host, port: port))
                l.proxyProtocol = true
                l.proxyProtocolFrom = CIDRSet(from.map { CIDR($0)! })
                return l
            }
        }
    }

    @Test func aPeerOutsideTheBlocksIsClosedAtAcceptAndCounted() throws {
        let l = try Listener(Self.config([("127.0.0.1", 8080, ["127.0.0.2/32", "10.0.0.0/8"])]), listener: 0)
        let refused = try l.accept(from: "127.0.0.1")
        #expect(!refused.passed && !refused.child.isActive)
        #expect(l.untrusted == 1)
        #expect(l.gate.openConnections == 0)
        for peer in ["127.0.0.2", "10.9.8.7"] {
            let admitted = try l.accept(from: peer)
            #expect(admitted.passed && admitted.child.isActive, "\(peer)")
        }
        #expect(l.untrusted == 1)
    }

    @Test func withoutBlocksEveryPeerMaySendAHeader() throws {
        let l = try Listener(Self.config([("127.0.0.1", 8080, [])]), listener: 0)
        #expect(try l.accept(from: "192.0.2.55").passed)
        #expect(l.untrusted == 0)
    }

    @Test func theListenerIsFoundByTheAddressItIsBoundTo() throws {
        let config = Self.config([("127.0.0.1", 0, []), ("127.0.0.1", 8080, ["127.0.0.2/32"])])
        let bound = try Listener(config, listener: nil, port: 8080)
        #expect(!(try bound.accept(from: "127.0.0.1").passed))
        #expect(try bound.accept(from: "127.0.0.2").passed)
        let other = try Listener(config, listener: nil, port: 41_000)
        #expect(try other.accept(from: "127.0.0.1").passed)
    }

    @Test func candidatesNarrowToTheExactPortAndRequireEveryOneOtherwise() throws {
        let listeners = Self.config([
            ("127.0.0.1", 0, ["127.0.0.2"]), ("127.0.0.1", 8080, []), ("localhost", 9000, []), ("0.0.0.0", 0, []), ("127.0.0.1", 0, ["127.0.0.3"]),
        ]).listeners
        func candidates(_ ip: String, _ port: Int) throws -> [Int] {
            AcceptGate.candidates(boundTo: try SocketAddress(ipAddress: ip, port: port), proxyProtocol: true, in: listeners)
        }
        #expect(try candidates("127.0.0.1", 8080) == [1])
        #expect(try candidates("127.0.0.1", 9000) == [2])
        #expect(try candidates("0.0.0.0", 41_000) == [3])
        #expect(try candidates("127.0.0.1", 41_000) == [0, 4])
        #expect(AcceptGate.candidates(boundTo: try SocketAddress(ipAddress: "127.0.0.1", port: 8080), proxyProtocol: false, in: listeners).isEmpty)
        // Two port-0 listeners on one address cannot be told apart: a peer must suit both.
        let ambiguous = try Listener(PipelineHarness.config { $0.listeners = listeners }, listener: nil, port: 41_000)
        #expect(!(try ambiguous.accept(from: "127.0.0.2").passed))
        #expect(!(try ambiguous.accept(from: "127.0.0.3").passed))
    }

    @Test func anUnknownListenerRefusesEveryPeer() throws {
        let l = try Listener(Self.config([("127.0.0.1", 8080, [])]), listener: nil, bound: "127.0.0.9", port: 8080)
        #expect(!(try l.accept(from: "127.0.0.1").passed))
        #expect(l.untrusted == 1)
    }
}
