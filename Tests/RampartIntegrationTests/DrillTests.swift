import Foundation
import NIOCore
import RampartCore
import RampartDemoOrigin
import RampartDrill
import Testing

extension IntegrationTests {
@Suite struct DrillSafetyTests {
    @Test(arguments: ["10.0.0.1:80", "192.168.1.10:8080", "8.8.8.8:53", "example.com:80", "[2001:db8::1]:80", "0.0.0.0:80", "127.0.0.1"])
    func refusesAnythingButLoopback(_ target: String) {
        #expect(throws: DrillError.self) { try DrillSafety.loopbackTarget(target) }
    }

    @Test(arguments: ["127.0.0.1:8080", "127.42.0.9:80", "[::1]:8080", "localhost:8080"])
    func acceptsLoopback(_ target: String) throws {
        #expect(try DrillSafety.loopbackTarget(target).port != nil)
    }

    /// Several gateways (the nodes of a fleet): every one must be loopback, and each source keeps
    /// to one node while many sources spread evenly over them.
    @Test func severalTargetsAreAllLoopbackAndSourcesSpreadOverThem() throws {
        #expect(throws: DrillError.self) { try DrillSafety.loopbackTargets("127.0.0.1:8080,10.0.0.1:8080") }
        #expect(throws: DrillError.self) { try DrillSafety.loopbackTargets(" , ") }
        let targets = try DrillSafety.loopbackTargets("127.0.0.1:8081, 127.0.0.1:8082,127.0.0.1:8083")
        #expect(targets.map(\.port) == [8081, 8082, 8083])
        let plan = DrillPlan(targets: targets, originStats: targets[0], scenario: .s2)
        var perNode: [Int: Int] = [:]
        for i in 0..<3000 {
            let source = IPAddress(v4: DrillSafety.attackRange.network.v4Value! &+ UInt32(i))
            let node = plan.target(for: source)
            #expect(plan.target(for: source) == node)
            perNode[node.port!, default: 0] += 1
        }
        #expect(perNode.count == 3)
        #expect(perNode.values.allSatisfy { $0 > 850 && $0 < 1150 }, "\(perNode)")
    }

    @Test func theBinaryExitsNonZeroForOtherTargets() throws {
        for target in ["10.1.2.3:80", "example.org:443", "127.0.0.1:8080,192.168.0.1:80"] {
            let drill = try GatewayProcess(arguments: ["run", "--target", target, "--origin", "127.0.0.1:9000"], executable: "rampart-drill")
            let status = drill.waitForExit()
            #expect(status != nil && status != 0, "drill accepted \(target)")
            #expect(drill.stderrText.contains("refusing target"))
        }
    }
}
}

extension IntegrationTests {
@Suite(.serialized) struct DrillRunTests {
    static func originConfig() -> DemoOrigin.Configuration {
        var c = DemoOrigin.Configuration()
        c.concurrency = 8
        c.serviceTime = .milliseconds(5)
        c.countedRanges = [DrillSafety.legitRange, DrillSafety.attackRange]
        return c
    }

    @Test func originCountsLegitAndAttackRequestsExactlyThroughTheGateway() async throws {
        let origin = DemoOrigin(configuration: Self.originConfig())
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let gw = try GatewayProcess(yaml: GatewayBinaryTests.yaml(origin: originPort))
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]

        let legit = try RawClient(port: port, source: "127.1.0.5")
        // JSON answers are never micro-cached, so each request reaches the origin.
        for _ in 0..<7 { #expect(legit.request("GET", "/api/status")?.status == 200) }
        for i in 0..<11 {
            let attacker = try RawClient(port: port, source: "127.128.3.\(i + 1)")
            #expect(attacker.request("GET", "/api/x?r=\(i)")?.status == 200)
        }
        #expect(origin.stats.perRange == [7, 11])
    }

    @Test func aShortS1RunEndToEnd() async throws {
        let origin = DemoOrigin(configuration: Self.originConfig())
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let gw = try GatewayProcess(yaml: GatewayBinaryTests.yaml(origin: originPort))
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]

        var plan = DrillPlan(
            target: try DrillSafety.loopbackTarget("127.0.0.1:\(port)"),
            originStats: try DrillSafety.loopbackTarget("127.0.0.1:\(originPort)"),
            scenario: .s1
        )
        // Two seconds of warm-up: users start within the first second, and a loaded CI machine
        // (browser tests run alongside) may start them late.
        plan.warmup = 2
        plan.attack = 2
        plan.cooldown = 1
        plan.legitUsers = 4
        plan.gatewayPID = gw.process.processIdentifier
        plan.maxRequests = 20_000
        let report = await DrillRunner(plan: plan).run()
        #expect(report.scenario == "S1")
        #expect(report.warmup.legitPageViews > 0)
        #expect(report.attackWindow.legitPageViews > 0)
        #expect(report.attackWindow.apiCalls > 0)
        #expect(report.attackWindow.apiSuccessPercent > 50)
        #expect(report.attackSent > 0)
        #expect(report.attackReachedOrigin <= report.attackSent)
        #expect(report.timeline.count >= 4)
        #expect(report.timeline.contains { $0.gatewayRSSMB > 0 })
        // The origin's own count of attack requests matches the drill's per-second samples.
        #expect(report.attackReachedOrigin <= origin.stats.perRange[1])
        let table = DrillOutput.table([report])
        #expect(table.contains("| S1 |"))
        #expect(DrillOutput.html([report], title: "t").contains("<svg"))
        #expect(DrillOutput.json([report]).contains("\"attackSent\""))
    }

    /// S6 through the real binary's one-site TLS mode: HTTP/2 floods are cut per connection, the
    /// origin sees next to none of the reset streams, users on HTTP/1.1 over TLS are served.
    @Test func aShortS6RunOverTLS() async throws {
        let fixture = try await TLSTests.TLSFixture.make("example.org", origin: DemoOrigin(configuration: Self.originConfig()))
        defer { fixture.close() }
        let (origin, originPort, dir, cert, key) = (fixture.origin, fixture.originPort, fixture.dir, fixture.cert, fixture.key)
        let gw = try GatewayProcess(arguments: [
            "run", "--listen", "127.0.0.1:0", "--origin", "127.0.0.1:\(originPort)", "--tls-cert", cert, "--tls-key", key,
            "--admin", "127.0.0.1:0", "--state", dir.appendingPathComponent("state").path,
        ])
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        var plan = DrillPlan(
            target: try DrillSafety.loopbackTarget("127.0.0.1:\(port)"),
            originStats: try DrillSafety.loopbackTarget("127.0.0.1:\(originPort)"),
            scenario: .s6
        )
        plan.tls = true
        plan.warmup = 2
        plan.attack = 3
        plan.cooldown = 1
        plan.legitUsers = 4
        plan.apiClients = 1
        plan.intensity = 2
        plan.maxRequests = 20_000
        let report = await DrillRunner(plan: plan).run()
        #expect(report.warmup.legitPageViews > 0 && report.warmup.successPercent == 100)
        #expect(report.attackWindow.legitPageViews > 0 && report.attackWindow.successPercent >= 90, "\(report.attackWindow)")
        #expect(report.attackSent > 200)
        #expect(origin.stats.perRange[1] * 10 < report.attackSent, "origin saw \(origin.stats.perRange[1]) of \(report.attackSent)")
        #expect(eventually { gw.stderrText.contains("reason=http2_flood") })

        // The command line refuses S6 without TLS.
        let drill = try GatewayProcess(
            arguments: ["run", "--target", "127.0.0.1:\(port)", "--origin", "127.0.0.1:\(originPort)", "--scenario", "S6"], executable: "rampart-drill"
        )
        #expect(drill.waitForExit() != 0)
        #expect(drill.stderrText.contains("--tls"))
    }
}
}
