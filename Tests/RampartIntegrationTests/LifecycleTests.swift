import Foundation
import RampartDemoOrigin
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The process's lifecycle through the real binary: SIGTERM drains within `timeouts.drain`, loses
/// nothing in flight, and refuses new connections from the moment the drain starts.
extension IntegrationTests {
@Suite(.serialized) struct LifecycleTests {
    static func yaml(origin: Int, drain: String) -> String {
        """
        listeners:
          - address: 127.0.0.1:0
        timeouts: { drain: \(drain) }
        sites:
          - name: www
            hosts: [example.org]
            origins: [127.0.0.1:\(origin)]
        """
    }

    @Test func sigtermFinishesEveryRequestInFlightRefusesNewConnectionsAndExitsWithinTheDrain() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let gw = try GatewayProcess(yaml: Self.yaml(origin: originPort, drain: "5s"))
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]

        // A kept-alive connection with nothing in flight must not hold the drain up.
        let idle = try RawClient(port: port)
        #expect(idle.request("GET", "/echo")?.status == 200)
        let inFlight = try (0..<12).map { _ in try RawClient(port: port) }
        for client in inFlight { client.send("GET /slow?ms=1500 HTTP/1.1\r\nHost: example.org\r\n\r\n") }
        usleep(300_000)
        let signalled = Date()
        gw.signal(SIGTERM)

        // The listening socket closes at once: a new connection is refused while the old ones finish.
        #expect(eventually(timeout: 1) { (try? RawClient(port: port)) == nil }, "still accepting while draining")
        #expect(gw.process.isRunning, "exited before the requests in flight finished")
        #expect(idle.waitForClose(timeout: 1), "an idle kept-alive connection was not closed by the drain")
        for client in inFlight {
            let reply = client.readResponse()
            #expect(reply?.status == 200)
            #expect(reply?.text == "slow 1500ms\n")
        }
        #expect(gw.waitForExit(timeout: 10) == 0)
        let took = Date().timeIntervalSince(signalled)
        // The slow requests had about 1.2 s left: the process ends after them and inside the 5 s
        // bound (the drain finished by itself, below), however busy the machine is.
        #expect(took < 5, "exit took \(took) s after SIGTERM")
        #expect(gw.stderrText.contains("drained: every connection finished"), "\(gw.stderrText)")
    }

    @Test func aRequestLongerThanTheDrainIsCutAtTheBound() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let gw = try GatewayProcess(yaml: Self.yaml(origin: originPort, drain: "1s"))
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]

        let stuck = try RawClient(port: port)
        stuck.send("GET /slow?ms=20000 HTTP/1.1\r\nHost: example.org\r\n\r\n")
        usleep(300_000)
        let signalled = Date()
        gw.signal(SIGTERM)
        #expect(gw.waitForExit(timeout: 10) == 0)
        let took = Date().timeIntervalSince(signalled)
        #expect(took >= 0.9 && took < 3, "exit took \(took) s after SIGTERM with timeouts.drain 1s")
        #expect(gw.stderrText.contains("drain timeout reached"), "\(gw.stderrText)")
        // Cut: no answer, or the gateway's own 502 as the origin connection closes; never the page.
        let cut = stuck.readResponse()
        #expect(cut == nil || cut?.status == 502, "a request cut by the drain bound got \(cut.map { "\($0.status)" } ?? "")")
    }
}
}
