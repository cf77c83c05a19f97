import NIOCore
import Testing

@testable import RampartCore

@Suite struct ConfigLoaderTests {
    static let root = URLPath.packageRoot

    @Test func exampleConfigLoads() throws {
        let config = try ConfigLoader.load(path: Self.root + "/examples/rampart.yaml")
        #expect(config.listeners.count == 1)
        #expect(config.listeners[0].address == HostPort(host: "0.0.0.0", port: 8080))
        #expect(config.listeners[0].limits.maxConnections == 20000)
        #expect(config.sites.map(\.name) == ["www", "api"])
        #expect(config.sites[0].origins.count == 2)
        #expect(config.sites[0].origins[1].address.port == 9001)
        #expect(config.sites[0].healthCheck.path == "/healthz")
        #expect(config.sites[1].limits.maxBodyBytes == 1 << 20)
        #expect(config.sites[1].limits.bodyMinRate == 2048)
        // Site limits start from the top level, listener limits too.
        #expect(config.sites[0].limits.maxBodyBytes == 10 << 20)
        #expect(config.listeners[0].limits.maxBodyBytes == 10 << 20)
        #expect(config.trustedProxies.contains(IPAddress("127.0.0.1")!))
        #expect(config.adminAddress == HostPort(host: "127.0.0.1", port: 9090))
        #expect(config.sites[0].requestHeaders.strip == RequestHeaderPolicy.defaultStrip.filter { $0 != "x-forwarded-prefix" })
        #expect(config.sites[1].requestHeaders == RequestHeaderPolicy())
        #expect(try ConfigLoader.check(path: Self.root + "/examples/rampart.yaml").warnings.isEmpty)
    }

    @Test func everyProblemIsReportedWithLineAndKey() throws {
        let path = Self.root + "/Tests/RampartCoreTests/testdata/bad.yaml"
        #expect(throws: ConfigError.self) { try ConfigLoader.load(path: path) }
        do {
            _ = try ConfigLoader.load(path: path)
        } catch {
            let text = error.description
            let expected: [(Int, String)] = [
                (2, "listeners[0].address"),
                (4, "listeners[0].limits.max_body_bytes"),
                (5, "listeners[1].address"),
                (6, "trusted_proxies[0]"),
                (7, "default_site"),
                (9, "timeouts.header"),
                (13, "sites[0].origins[0]"),
                (14, "sites[0].balanse"),
                (15, "sites[1].name"),
                (16, "sites[1].hosts[1]"),
                (17, "sites[1].origins"),
            ]
            for (line, key) in expected {
                #expect(error.issues.contains { $0.line == line && $0.key == key }, "missing \(key) at line \(line) in:\n\(text)")
            }
            #expect(text.contains("bad.yaml:14:5: sites[0].balanse: unknown key (did you mean 'balance'?)"))
        }
    }

    @Test func syntaxErrorsHaveALine() {
        do {
            _ = try ConfigLoader.load(yaml: "listeners:\n  - address: [unclosed\n", file: "x.yaml")
            Issue.record("accepted broken YAML")
        } catch {
            #expect(error.issues.first?.line ?? 0 > 0)
            #expect(error.description.hasPrefix("x.yaml:"))
        }
    }

    @Test func emptyAndMissingSections() {
        do {
            _ = try ConfigLoader.load(yaml: "state: /tmp/x\n", file: "e.yaml")
            Issue.record("accepted a config without listeners")
        } catch {
            #expect(error.issues.map(\.key).contains("listeners"))
            #expect(error.issues.map(\.key).contains("sites"))
        }
    }

    @Test func valueSyntax() {
        #expect(ValueParsing.duration("250ms") == .milliseconds(250))
        #expect(ValueParsing.duration("10s") == .seconds(10))
        #expect(ValueParsing.duration("2m") == .minutes(2))
        #expect(ValueParsing.duration("1.5s") == .milliseconds(1500))
        #expect(ValueParsing.duration("7") == .seconds(7))
        #expect(ValueParsing.duration("soon") == nil)
        #expect(ValueParsing.bytes("16KiB") == 16384)
        #expect(ValueParsing.bytes("10M") == 10 << 20)
        #expect(ValueParsing.bytes("512") == 512)
        #expect(ValueParsing.bytes("-1") == nil)
    }

    @Test func oneSiteDefaults() {
        let c = GatewayConfig.oneSite(listen: HostPort(parsing: "127.0.0.1:8080")!, origins: [HostPort(parsing: "127.0.0.1:9000")!])
        #expect(c.sites.count == 1)
        #expect(SiteRouter(sites: c.sites, defaultSite: c.defaultSite).route(host: "anything.example") == 0)
        #expect(c.listeners[0].limits.headerTimeout == .seconds(10))
    }
}

/// Where the package is, from this file's path.
enum URLPath {
    static var packageRoot: String {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)  // Tests/RampartCoreTests/ConfigLoaderTests.swift
        return parts.joined(separator: "/")
    }
}

@Suite struct DefenceConfigTests {
    @Test func detectionChallengeModeAndTLSKeysAreReadAndCheckedWithLineAndKey() throws {
        let good = """
            listeners: [{address: 127.0.0.1:8080}]
            alerts: { webhooks: [http://127.0.0.1:9999/hook] }
            access_log: { path: "-", per_second: 50 }
            sites:
              - name: www
                hosts: [example.org]
                origins: [127.0.0.1:9000]
                mode: under_attack
                detection: { min_rate: 100/s, elevated_factor: 4, attack_factor: 8, sustain: 3s }
                challenge: { tier: pow, difficulty: 18, wait: 3s, exempt_paths: [/api/, /status] }
                hsts: max-age=600
                https_redirect: true
            """
        let c = try ConfigLoader.load(yaml: good, file: "good.yaml")
        let site = c.sites[0]
        #expect(site.fixedMode == .underAttack)
        #expect(site.detection.minRate == 100 && site.detection.elevatedFactor == 4 && site.detection.sustain == 3)
        #expect(site.challenge.tier == .pow && site.challenge.difficulty == 18 && site.challenge.waitSeconds == 3)
        #expect(site.challenge.exemptPaths == ["/api/", "/status"])
        #expect(site.hsts == "max-age=600" && site.httpsRedirect)
        #expect(c.alertWebhooks == ["http://127.0.0.1:9999/hook"] && c.accessLogPath == "-" && c.accessLogPerSecond == 50)

        let bad = """
            listeners:
              - address: 127.0.0.1:8080
                tls: { cert: /nonexistent/cert.pem, key: /nonexistent/key.pem }
            sites:
              - name: www
                hosts: [example.org]
                origins: [127.0.0.1:9000]
                mode: panic
                detection: { elevated_factor: 9, attack_factor: 2 }
                challenge: { tier: captcha, difficulty: 99 }
            """
        do {
            _ = try ConfigLoader.load(yaml: bad, file: "bad.yaml")
            Issue.record("a bad config was accepted")
        } catch {
            let text = error.description
            #expect(text.contains("bad.yaml:3:") && text.contains("listeners[0].tls.cert") && text.contains("cannot read"))
            #expect(text.contains("bad.yaml:8:") && text.contains("sites[0].mode"))
            #expect(text.contains("sites[0].detection.attack_factor"))
            #expect(text.contains("sites[0].challenge.tier") && text.contains("sites[0].challenge.difficulty"))
        }
    }

    @Test func fingerprintAndOriginTLSKeys() throws {
        let good = """
            listeners: [{address: 127.0.0.1:8443, proxy_protocol: true}]
            sites:
              - name: www
                hosts: [example.org]
                origins:
                  - { address: 10.0.0.5:443, tls: { ca: /etc/hostname, server_name: www.example.lt } }
                  - { address: origin.example.lt:443, tls: true }
                  - 10.0.0.6:80
                fingerprints: { deny: ["t13d1516h2_8daaf6152771_d8a2da3f94cd"], challenge: ["t12*"] }
                rate_limits: [{ name: per-stack, key: ja4, rate: 50/s }]
            """
        let c = try ConfigLoader.load(yaml: good, file: "good.yaml")
        let origins = c.sites[0].origins
        #expect(origins[0].tls?.caFile == "/etc/hostname" && origins[0].tlsServerName == "www.example.lt")
        #expect(origins[1].tls?.verify == true && origins[1].tlsServerName == "origin.example.lt")
        #expect(origins[2].tls == nil && origins[2].tlsServerName == nil)
        #expect(c.sites[0].fingerprints.verdict("t13d1516h2_8daaf6152771_d8a2da3f94cd") == .deny)
        #expect(c.sites[0].fingerprints.verdict("t12d1207h1_aaaaaaaaaaaa_bbbbbbbbbbbb") == .challenge)
        #expect(c.sites[0].rateLimits[0].key == .ja4)

        let bad = """
            listeners: [{address: 127.0.0.1:8080}]
            sites:
              - name: www
                hosts: [example.org]
                origins:
                  - { address: 10.0.0.5:443, tls: { ca: /nonexistent/ca.pem, verify: maybe } }
                fingerprints: { deny: ["t1*3"], allow: [x] }
                rate_limits: [{ name: r, key: tls, rate: 5/s }]
            """
        do {
            _ = try ConfigLoader.load(yaml: bad, file: "bad.yaml")
            Issue.record("a bad config was accepted")
        } catch {
            let text = error.description
            #expect(text.contains("bad.yaml:6:") && text.contains("sites[0].origins[0].tls.ca") && text.contains("cannot read"), "\(text)")
            #expect(text.contains("sites[0].origins[0].tls.verify"), "\(text)")
            #expect(text.contains("bad.yaml:7:") && text.contains("sites[0].fingerprints.deny[0]"), "\(text)")
            #expect(text.contains("sites[0].fingerprints.allow"), "\(text)")
            #expect(text.contains("sites[0].rate_limits[0].key") && text.contains("ja4"), "\(text)")
        }
    }
}

@Suite struct ListenerAndHeaderConfigTests {
    @Test func proxyProtocolFromIsReadAndAListenerWithoutItIsAWarning() throws {
        let good = """
            listeners:
              - address: 127.0.0.1:8080
                proxy_protocol: true
                proxy_protocol_from: [10.0.0.0/8, 192.0.2.7, "2001:db8::/32"]
              - address: 127.0.0.1:8081
                proxy_protocol: true
              - address: 127.0.0.1:8082
                proxy_protocol_from: [10.0.0.0/8]
            sites: [{name: www, hosts: [example.org], origins: [127.0.0.1:9000]}]
            """
        let checked = try ConfigLoader.check(yaml: good, file: "pp.yaml")
        let from = checked.config.listeners[0].proxyProtocolFrom
        #expect(from.blocks.count == 3)
        #expect(from.contains(IPAddress("10.1.2.3")!) && from.contains(IPAddress("192.0.2.7")!) && from.contains(IPAddress("2001:db8::1")!))
        #expect(!from.contains(IPAddress("192.0.2.8")!))
        #expect(checked.config.listeners[1].proxyProtocolFrom.isEmpty)
        // A PROXY listener that believes anyone, and a list that does nothing: warnings, not errors.
        #expect(checked.warnings.map(\.key) == ["listeners[1].proxy_protocol", "listeners[2].proxy_protocol_from"], "\(checked.warnings)")
        #expect(checked.warnings[0].line == 6 && checked.warnings[0].message.contains("any peer"))
        #expect(checked.warnings[0].description.hasPrefix("pp.yaml:6:"))
        #expect(try ConfigLoader.check(yaml: good.replacingOccurrences(of: "  - address: 127.0.0.1:8081\n    proxy_protocol: true\n", with: "")
            .replacingOccurrences(of: "  - address: 127.0.0.1:8082\n    proxy_protocol_from: [10.0.0.0/8]\n", with: ""), file: "pp.yaml").warnings.isEmpty)

        let bad = """
            listeners:
              - address: 127.0.0.1:8080
                proxy_protocol: true
                proxy_protocol_from: [10.0.0.0/33, load-balancer]
              - address: 127.0.0.1:8081
                proxy_protocol: true
                proxy_protocol_from: []
              - address: 127.0.0.1:8082
                proxy_protocol_from: 10.0.0.0/8
            sites: [{name: www, hosts: [example.org], origins: [127.0.0.1:9000]}]
            """
        do {
            _ = try ConfigLoader.load(yaml: bad, file: "bad.yaml")
            Issue.record("a bad proxy_protocol_from was accepted")
        } catch {
            let found = error.issues.map { "\($0.line) \($0.key)" }
            #expect(found == [
                "4 listeners[0].proxy_protocol_from[0]", "4 listeners[0].proxy_protocol_from[1]", "7 listeners[1].proxy_protocol_from",
                "9 listeners[2].proxy_protocol_from",
            ], "\(error)")
        }
    }

    static func site(_ requestHeaders: String) -> String {
        """
        listeners: [{address: 127.0.0.1:8080}]
        sites:
          - name: www
            hosts: [example.org]
            origins: [127.0.0.1:9000]
            request_headers: \(requestHeaders)
        """
    }

    @Test func requestHeadersStripReplacesPassRemovesAndTheSwitchesAreRead() throws {
        #expect(try ConfigLoader.load(yaml: Self.site("{}"), file: "h.yaml").sites[0].requestHeaders == RequestHeaderPolicy())
        let passed = try ConfigLoader.check(yaml: Self.site("{pass: [X-Forwarded-Prefix, cf-connecting-ip], forwarded: true}"), file: "h.yaml")
        let policy = passed.config.sites[0].requestHeaders
        #expect(policy.strip == RequestHeaderPolicy.defaultStrip.filter { $0 != "x-forwarded-prefix" && $0 != "cf-connecting-ip" })
        #expect(policy.setForwarded && policy.setRealIP)
        #expect(passed.warnings.isEmpty)

        let replaced = try ConfigLoader.check(yaml: Self.site("{strip: [X-Real-IP, X-Debug-User, forwarded], pass: [x-debug-user], x_real_ip: false}"), file: "h.yaml")
        #expect(replaced.config.sites[0].requestHeaders.strip == ["x-real-ip", "forwarded"])
        #expect(!replaced.config.sites[0].requestHeaders.setRealIP && !replaced.config.sites[0].requestHeaders.setForwarded)
        #expect(replaced.warnings.isEmpty)

        // Neither stripped nor set: the client picks the value the origin reads. Allowed, warned.
        let open = try ConfigLoader.check(yaml: Self.site("{pass: [x-real-ip], x_real_ip: false}"), file: "h.yaml")
        #expect(open.warnings.map(\.key) == ["sites[0].request_headers"] && open.warnings[0].message.contains("X-Real-IP"), "\(open.warnings)")
    }

    @Test func requestHeaderNamesAreCheckedWithLineAndKey() {
        let bad = """
            listeners: [{address: 127.0.0.1:8080}]
            sites:
              - name: www
                hosts: [example.org]
                origins: [127.0.0.1:9000]
                request_headers:
                  strip: ["x-real-ip", "bad header", "Content-Length", x-real-ip, "x-ümlaut"]
                  pass: [x-original-url]
                  forwarded: maybe
                  strip_all: true
            """
        do {
            _ = try ConfigLoader.load(yaml: bad, file: "bad.yaml")
            Issue.record("bad request_headers were accepted")
        } catch {
            let found = error.issues.map { "\($0.line) \($0.key)" }
            #expect(found == [
                "10 sites[0].request_headers.strip_all", "7 sites[0].request_headers.strip[1]", "7 sites[0].request_headers.strip[2]",
                "7 sites[0].request_headers.strip[3]", "7 sites[0].request_headers.strip[4]", "9 sites[0].request_headers.forwarded",
                "8 sites[0].request_headers.pass[0]",
            ], "\(error)")
            #expect(error.description.contains("'content-length'; it cannot be stripped"), "\(error)")
            #expect(error.description.contains("'x-original-url' is not stripped"), "\(error)")
        }
    }
}
