import NIOCore
import Testing

@testable import RampartCore

@Suite struct CredentialFailuresTests {
    static let s: Int64 = 1_000_000_000

    /// Evaluated outside `#expect`, which would print the whole table on a failure.
    static func blocked(_ t: CredentialFailures, client: IPAddress, fingerprint: String?, now: Int64) -> Bool {
        t.isBlocked(client: client, fingerprint: fingerprint, now: now)
    }

    static func fail(_ t: inout CredentialFailures, client: IPAddress, fingerprint: String?, now: Int64) -> CredentialFailures.Scope? {
        t.failed(client: client, fingerprint: fingerprint, now: now)
    }

    static func config() -> CredentialGuardConfig {
        var c = CredentialGuardConfig()
        c.perSource = 3
        c.perSubnet = 10
        c.perFingerprint = 25
        c.window = .seconds(60)
        c.blockFor = .seconds(600)
        return c
    }

    @Test func aSourcePastItsAllowanceIsBlockedItsNeighboursAreNot() {
        var t = CredentialFailures(config: Self.config(), loops: 1)
        let sprayer = IPAddress("203.0.113.5")!
        let neighbour = IPAddress("203.0.113.6")!
        for i in 0..<3 { #expect(Self.fail(&t, client: sprayer, fingerprint: nil, now: Int64(i) * Self.s) == nil) }
        #expect(!Self.blocked(t, client: sprayer, fingerprint: nil, now: 3 * Self.s))
        #expect(Self.fail(&t, client: sprayer, fingerprint: nil, now: 3 * Self.s) == .source)
        #expect(Self.blocked(t, client: sprayer, fingerprint: nil, now: 4 * Self.s))
        #expect(!Self.blocked(t, client: neighbour, fingerprint: nil, now: 4 * Self.s))
        // The block ends after block_for.
        #expect(Self.blocked(t, client: sprayer, fingerprint: nil, now: 602 * Self.s))
        #expect(!Self.blocked(t, client: sprayer, fingerprint: nil, now: 603 * Self.s))
    }

    @Test func aPersonWhoMistypesNowAndThenIsNeverBlocked() {
        var t = CredentialFailures(config: Self.config(), loops: 1)
        let person = IPAddress("198.51.100.7")!
        // One wrong password every 30 s for an hour: the allowance refills at 3 a minute.
        for i in 0..<120 { #expect(Self.fail(&t, client: person, fingerprint: nil, now: Int64(i) * 30 * Self.s) == nil) }
        #expect(!Self.blocked(t, client: person, fingerprint: nil, now: 3600 * Self.s))
    }

    @Test func aSprayFromManyAddressesOfOneSubnetOrOneStackIsBlockedAsAGroup() {
        var t = CredentialFailures(config: Self.config(), loops: 1)
        // Two failures each (under the per-source allowance) from addresses of one /24.
        var blocked: CredentialFailures.Scope?
        for i in 0..<6 {
            let a = IPAddress("203.0.113.\(10 + i)")!
            for _ in 0..<2 { blocked = t.failed(client: a, fingerprint: nil, now: Self.s) ?? blocked }
        }
        #expect(blocked == .subnet)
        #expect(Self.blocked(t, client: IPAddress("203.0.113.200")!, fingerprint: nil, now: 2 * Self.s))
        #expect(!Self.blocked(t, client: IPAddress("203.0.114.1")!, fingerprint: nil, now: 2 * Self.s))
        // The subnet's key is not its first address's: 203.0.113.0 as a client is blocked with
        // the subnet, but blocking 198.51.100.0 alone does not block its /24.
        for _ in 0..<4 { t.failed(client: IPAddress("198.51.100.0")!, fingerprint: nil, now: Self.s) }
        #expect(Self.blocked(t, client: IPAddress("198.51.100.0")!, fingerprint: nil, now: 2 * Self.s))
        #expect(!Self.blocked(t, client: IPAddress("198.51.100.1")!, fingerprint: nil, now: 2 * Self.s))

        // One TLS stack over many /24s: 26 failures from 13 networks.
        let stack = "t13d1516h2_8daaf6152771_e5627efa2ab1"
        for i in 0..<13 { for _ in 0..<2 { t.failed(client: IPAddress("10.\(i).0.1")!, fingerprint: stack, now: Self.s) } }
        #expect(Self.blocked(t, client: IPAddress("10.99.0.1")!, fingerprint: stack, now: 2 * Self.s))
        #expect(!Self.blocked(t, client: IPAddress("10.99.0.1")!, fingerprint: "t13d1516h2_other", now: 2 * Self.s))
    }

    @Test func allowancesAreSplitOverEventLoops() {
        var t = CredentialFailures(config: Self.config(), loops: 3)
        let a = IPAddress("203.0.113.5")!
        #expect(Self.fail(&t, client: a, fingerprint: nil, now: 0) == nil)
        #expect(Self.fail(&t, client: a, fingerprint: nil, now: 0) == .source)
    }

    @Test func loginsAndFailuresAreRecognised() {
        let c = CredentialGuardConfig()
        #expect(CredentialFailures.isLogin(method: .POST, path: "/login", config: c))
        #expect(CredentialFailures.isLogin(method: .POST, path: "/user/login/2fa", config: c))
        #expect(!CredentialFailures.isLogin(method: .GET, path: "/login", config: c))
        #expect(!CredentialFailures.isLogin(method: .POST, path: "/logins-history", config: c))
        #expect(!CredentialFailures.isLogin(method: .POST, path: "/comment", config: c))
        #expect(CredentialFailures.isFailure(status: 401, location: nil, config: c))
        #expect(CredentialFailures.isFailure(status: 403, location: nil, config: c))
        #expect(CredentialFailures.isFailure(status: 302, location: "/login?error=1", config: c))
        #expect(!CredentialFailures.isFailure(status: 302, location: "/account", config: c))
        #expect(!CredentialFailures.isFailure(status: 200, location: nil, config: c))
        #expect(!CredentialFailures.isFailure(status: 503, location: nil, config: c))
    }

    @Test func theConfigIsReadAndCheckedWithLineAndKey() throws {
        let good = """
            listeners: [{address: 127.0.0.1:8080}]
            sites:
              - name: www
                hosts: [example.org]
                origins: [10.0.0.6:80]
                credentials: { login_routes: [/signin, /api/token], failure_status: [401], failure_location: login_failed, per_source: 4, per_subnet: 40, window: 2m, block_for: 15m }
            """
        let c = try ConfigLoader.load(yaml: good, file: "good.yaml").sites[0].credentials
        #expect(c.loginRoutes == ["/signin", "/api/token"] && c.failureStatus == [401] && c.failureLocation == "login_failed")
        #expect(c.perSource == 4 && c.perSubnet == 40 && c.window == .minutes(2) && c.blockFor == .minutes(15))

        let bad = """
            listeners: [{address: 127.0.0.1:8080}]
            sites:
              - name: www
                hosts: [example.org]
                origins: [10.0.0.6:80]
                credentials:
                  login_routes: [signin]
                  per_source: 10
                  per_subnet: 5
                  failure_status: [99]
            """
        do {
            _ = try ConfigLoader.load(yaml: bad, file: "bad.yaml")
            Issue.record("a bad config was accepted")
        } catch {
            let text = error.description
            #expect(text.contains("bad.yaml:7:") && text.contains("sites[0].credentials.login_routes[0]"), "\(text)")
            #expect(text.contains("bad.yaml:9:") && text.contains("sites[0].credentials.per_subnet"), "\(text)")
            #expect(text.contains("sites[0].credentials.failure_status[0]"), "\(text)")
        }
    }

    @Test func aSecondOfMostlyRefusedCredentialsIsAnAttackSignal() {
        var c = DetectionConfig()
        c.minRate = 20
        var mode = ModeController(config: c)
        var spray = TrafficSecond()
        spray.requests = 400
        spray.queuePeak = 5
        spray.credentialAttempts = 300
        spray.credentialFailures = 290
        var changes: [ModeChange] = []
        for t in 0..<3 { if let change = mode.observe(spray, at: Int64(t)) { changes.append(change) } }
        #expect(mode.mode == .underAttack)
        #expect(changes.last?.reason.contains("290 of 300 logins and API keys refused") == true)
        // The same load with logins that succeed is a surge, not an attack.
        var surge = spray
        surge.credentialFailures = 10
        var calm = ModeController(config: c)
        for t in 0..<3 { _ = calm.observe(surge, at: Int64(t)) }
        #expect(calm.mode != .underAttack)
    }
}
