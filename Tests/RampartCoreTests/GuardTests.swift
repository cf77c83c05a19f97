import NIOCore
import NIOHTTP1
import Testing

@testable import RampartCore

@Suite struct RequestChecksTests {
    func head(_ method: HTTPMethod = .GET, _ uri: String = "/", _ headers: [(String, String)], version: HTTPVersion = .http1_1) -> HTTPRequestHead {
        HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(headers))
    }

    func reason(_ h: HTTPRequestHead, limits: Limits = Limits()) -> RejectReason? {
        if case .failure(let e) = RequestChecks.check(h, limits: limits) { return e.reason }
        return nil
    }

    @Test func acceptsAPlainRequest() throws {
        let accepted = try RequestChecks.check(head(.POST, "/login?x=1", [("Host", "Example.org"), ("Content-Length", "12")]), limits: Limits()).get()
        #expect(accepted.host == "example.org")  // lower-cased: rules, cache key and origin see one form
        #expect(accepted.contentLength == 12)
        #expect(accepted.target == "/login?x=1")
        #expect(!accepted.chunked)
    }

    @Test func smugglingShapesAreRefused() {
        #expect(reason(head(.POST, "/", [("Host", "a"), ("Content-Length", "5"), ("Transfer-Encoding", "chunked")])) == .contentLengthWithTransferEncoding)
        #expect(reason(head(.POST, "/", [("Host", "a"), ("Content-Length", "5"), ("Content-Length", "5")])) == .badContentLength)
        #expect(reason(head(.POST, "/", [("Host", "a"), ("Content-Length", "+5")])) == .badContentLength)
        #expect(reason(head(.POST, "/", [("Host", "a"), ("Transfer-Encoding", "gzip, chunked")])) == .badTransferEncoding)
        #expect(reason(head(.POST, "/", [("Host", "a"), ("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")])) == .badTransferEncoding)
        #expect(reason(head(.POST, "/", [("Host", "a"), ("Transfer-Encoding", "chunked")], version: .http1_0)) == .badTransferEncoding)
        #expect(reason(head(.GET, "/", [("Host", "a"), ("Host", "b")])) == .duplicateHost)
        #expect(reason(head(.GET, "/", [])) == .missingHost)
        #expect(reason(head(.GET, "/", [("Host", "a b")])) == .badHeader)
    }

    @Test func http10WithoutHostIsFine() {
        #expect(reason(head(.GET, "/", [], version: .http1_0)) == nil)
    }

    @Test func sizeLimits() {
        var limits = Limits()
        limits.maxURIBytes = 32
        limits.maxBodyBytes = 100
        #expect(reason(head(.GET, "/" + String(repeating: "a", count: 40), [("Host", "a")]), limits: limits) == .uriTooLong)
        #expect(reason(head(.POST, "/", [("Host", "a"), ("Content-Length", "101")]), limits: limits) == .bodyTooLarge)
        #expect(reason(head(.POST, "/", [("Host", "a"), ("Content-Length", "100")]), limits: limits) == nil)
    }

    @Test func targets() throws {
        #expect(reason(head(.CONNECT, "example.org:443", [("Host", "example.org:443")])) == .methodNotAllowed)
        #expect(reason(head(.GET, "index.html", [("Host", "a")])) == .badTarget)
        let abs = try RequestChecks.check(head(.GET, "http://Other.example/path?q", [("Host", "ignored")]), limits: Limits()).get()
        #expect(abs.host == "other.example")
        #expect(abs.target == "/path?q")
        #expect(reason(head(.OPTIONS, "*", [("Host", "a")])) == nil)
        #expect(reason(head(.GET, "/", [("Host", "a"), ("Expect", "200-ok")])) == .expectationFailed)
        #expect(try RequestChecks.check(head(.PUT, "/", [("Host", "a"), ("Expect", "100-continue"), ("Content-Length", "3")]), limits: Limits()).get().expectsContinue)
    }
}

@Suite struct ConnectionTimeoutsTests {
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func limits() -> Limits {
        var l = Limits()
        l.headerTimeout = .seconds(10)
        l.idleTimeout = .seconds(60)
        l.bodyTimeout = .seconds(30)
        l.bodyMinRate = 100
        l.sendTimeout = .seconds(20)
        return l
    }

    @Test func slowlorisHitsTheHeaderDeadline() {
        var t = ConnectionTimeouts(limits: limits(), now: t0)
        #expect(t.check(now: t0 + .seconds(9)) == .ok(nextCheck: t0 + .seconds(10)))
        t.bytesReceived(now: t0 + .seconds(9))
        #expect(t.check(now: t0 + .seconds(10)) == .expired(.headerTimeout))
    }

    @Test func keepAliveIdleThenHeaderDeadlineFromFirstByte() {
        var t = ConnectionTimeouts(limits: limits(), now: t0)
        t.headReceived(now: t0 + .seconds(1), expectsBody: false)
        #expect(t.check(now: t0 + .seconds(100)) == .ok(nextCheck: nil))  // waiting on the origin: no client deadline
        t.responseEnded(now: t0 + .seconds(2))
        #expect(t.check(now: t0 + .seconds(61)) == .ok(nextCheck: t0 + .seconds(62)))
        t.bytesReceived(now: t0 + .seconds(61))
        #expect(t.check(now: t0 + .seconds(70)) == .ok(nextCheck: t0 + .seconds(71)))
        #expect(t.check(now: t0 + .seconds(71)) == .expired(.headerTimeout))
    }

    @Test func idleConnectionExpires() {
        var t = ConnectionTimeouts(limits: limits(), now: t0)
        t.headReceived(now: t0, expectsBody: false)
        t.responseEnded(now: t0)
        #expect(t.check(now: t0 + .seconds(60)) == .expired(.idleTimeout))
    }

    @Test func slowBodyIsCutOff() {
        var t = ConnectionTimeouts(limits: limits(), now: t0)
        t.headReceived(now: t0, expectsBody: true)
        t.bodyReceived(count: 600, now: t0 + .seconds(4))  // 600 bytes in the first 5 s window: >= 500 needed
        #expect(t.check(now: t0 + .seconds(5)) == .ok(nextCheck: t0 + .seconds(10)))
        t.bodyReceived(count: 100, now: t0 + .seconds(9))  // 100 bytes in the second window: too slow
        #expect(t.check(now: t0 + .seconds(10)) == .expired(.bodyTooSlow))
    }

    @Test func bodyDeadlineHoldsEvenAtGoodRate() {
        var l = limits()
        l.bodyMinRate = 0
        var t = ConnectionTimeouts(limits: l, now: t0)
        t.headReceived(now: t0, expectsBody: true)
        t.bodyReceived(count: 1_000_000, now: t0 + .seconds(29))
        #expect(t.check(now: t0 + .seconds(30)) == .expired(.bodyTimeout))
    }

    @Test func clientThatDoesNotReadIsCutOff() {
        var t = ConnectionTimeouts(limits: limits(), now: t0)
        t.headReceived(now: t0, expectsBody: false)
        t.writabilityChanged(isWritable: false, now: t0 + .seconds(1))
        #expect(t.check(now: t0 + .seconds(20)) == .ok(nextCheck: t0 + .seconds(21)))
        #expect(t.check(now: t0 + .seconds(21)) == .expired(.sendTimeout))
        t.writabilityChanged(isWritable: true, now: t0 + .seconds(21))
        #expect(t.check(now: t0 + .seconds(22)) == .ok(nextCheck: nil))
    }
}

@Suite struct ConnectionAdmissionTests {
    @Test func capsPerAddressAndTotal() {
        var a = ConnectionAdmission(maxConnections: 3, maxPerAddress: 2)
        let x = IPAddress("127.0.0.2")!
        let y = IPAddress("127.0.0.3")!
        #expect(a.admit(x) == nil)
        #expect(a.admit(x) == nil)
        #expect(a.admit(x) == .maxConnectionsPerIP)
        #expect(a.admit(y) == nil)
        #expect(a.admit(IPAddress("127.0.0.4")!) == .maxConnections)
        a.release(x)
        #expect(a.connections(from: x) == 1)
        #expect(a.admit(IPAddress("127.0.0.4")!) == nil)
        a.release(y)
        #expect(a.distinctAddresses == 2)
    }

    @Test func tableNeverOutgrowsTheConnectionCap() {
        var a = ConnectionAdmission(maxConnections: 100, maxPerAddress: 1)
        for i in 0..<10_000 { _ = a.admit(IPAddress(v4: 0x7F00_0000 | UInt32(i))) }
        #expect(a.distinctAddresses == 100)
        #expect(a.open == 100)
    }
}

@Suite struct OriginHealthTests {
    let t0 = NIODeadline.uptimeNanoseconds(5_000_000_000)

    @Test func passiveEjectionAndReturn() {
        var passive = PassiveHealthConfig()
        passive.maxFails = 2
        passive.ejectFor = .seconds(10)
        var h = OriginHealth(active: HealthCheckConfig(), passive: passive)
        let firstEjects = h.requestFailed(now: t0)
        #expect(!firstEjects)
        #expect(h.isAvailable(now: t0))
        let secondEjects = h.requestFailed(now: t0)
        #expect(secondEjects)
        #expect(!h.isAvailable(now: t0 + .seconds(9)))
        #expect(h.isAvailable(now: t0 + .seconds(10)))
    }

    @Test func activeChecksUseThresholds() {
        var active = HealthCheckConfig()
        active.unhealthyAfter = 2
        active.healthyAfter = 2
        var h = OriginHealth(active: active, passive: PassiveHealthConfig())
        #expect(h.checkFinished(healthy: false) == nil)
        #expect(h.checkFinished(healthy: false) == false)
        #expect(!h.isAvailable(now: t0))
        #expect(h.checkFinished(healthy: true) == nil)
        #expect(h.checkFinished(healthy: true) == true)
        #expect(h.isAvailable(now: t0))
    }

    @Test func roundRobinSkipsUnavailable() {
        var b = OriginBalancer(strategy: .roundRobin)
        let up = [true, false, true]
        let picks = (0..<4).map { _ in b.pick(count: 3, available: { up[$0] }, inFlight: { _ in 0 }) }
        #expect(picks == [0, 2, 0, 2])
        let none = b.pick(count: 3, available: { _ in false }, inFlight: { _ in 0 })
        #expect(none == nil)
    }

    @Test func leastConnectionsPicksTheLightest() {
        var b = OriginBalancer(strategy: .leastConnections)
        let load = [5, 1, 3]
        let first = b.pick(count: 3, available: { _ in true }, inFlight: { load[$0] })
        let second = b.pick(count: 3, available: { $0 != 1 }, inFlight: { load[$0] })
        #expect(first == 1)
        #expect(second == 2)
    }
}

@Suite struct SiteRouterTests {
    @Test func routesExactWildcardAndDefault() {
        let sites = [
            SiteConfig(name: "a", hosts: ["example.org", "www.example.org"], origins: []),
            SiteConfig(name: "b", hosts: ["*.example.org"], origins: []),
            SiteConfig(name: "c", hosts: ["*.deep.example.org"], origins: []),
        ]
        let r = SiteRouter(sites: sites, defaultSite: nil)
        #expect(r.route(host: "example.org") == 0)
        #expect(r.route(host: "WWW.Example.org:8080") == 0)
        #expect(r.route(host: "api.example.org") == 1)
        #expect(r.route(host: "x.deep.example.org") == 2)
        #expect(r.route(host: "example.org.") == 0)
        #expect(r.route(host: "other.net") == nil)
        #expect(r.route(host: nil) == nil)
        let withDefault = SiteRouter(sites: sites, defaultSite: "b")
        #expect(withDefault.route(host: "other.net") == 1)
    }
}
