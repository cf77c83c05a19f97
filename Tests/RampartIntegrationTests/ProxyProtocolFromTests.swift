import Foundation
import RampartDemoOrigin
import Testing

/// `proxy_protocol_from` through the real binary: a PROXY header is believed only from the load
/// balancers listed; any other peer is closed before its header is read.
extension IntegrationTests {
@Suite(.serialized) struct ProxyProtocolFromTests {
    @Test func onlyListedPeersMayNameTheClient() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let yaml = """
            listeners:
              - address: 127.0.0.1:0
                proxy_protocol: true
                proxy_protocol_from: [127.0.0.2/32]
            admin: { token: test-admin-token-0123456789 }
            sites:
              - name: www
                hosts: [example.org]
                origins: [127.0.0.1:\(originPort)]
                health_check: { enabled: false }
            """
        let gw = try GatewayProcess(yaml: yaml)
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        let (admin, token) = (try gw.adminPort(), "test-admin-token-0123456789")
        let before = origin.stats.requests

        // 127.0.0.1 is not a listed load balancer: its header names a client it has no say over.
        let spoofer = try RawClient(port: port, source: "127.0.0.1")
        spoofer.send("PROXY TCP4 198.51.100.66 127.0.0.1 40000 80\r\nGET /echo HTTP/1.1\r\nHost: example.org\r\n\r\n")
        #expect(spoofer.readResponse() == nil, "an unlisted peer got an answer")
        #expect(spoofer.waitForClose(timeout: 2))
        #expect(origin.stats.requests == before, "the origin saw a request from an unlisted peer")

        let balancer = try RawClient(port: port, source: "127.0.0.2")
        balancer.send("PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n")
        let reply = try #require(balancer.request("GET", "/echo"))
        #expect(reply.status == 200)
        #expect(reply.echoed("x-forwarded-for") == "203.0.113.7")

        let metrics = try #require(try RawClient(port: admin).request("GET", "/metrics", headers: ["Authorization: Bearer \(token)"]))
        #expect(metrics.text.contains(#"rampart_rejections_total{reason="proxy_protocol_untrusted"} 1"#), "\(metrics.text)")
    }
}
}
