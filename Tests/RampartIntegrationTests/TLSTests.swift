import Foundation
import RampartDemoOrigin
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// HTTPS and HTTP/2 through the real binary, with real clients: curl (HTTP/2 and HTTP/1.1 over
/// TLS), openssl s_client (SNI), and a raw-frame HTTP/2 attacker (rapid reset, CONTINUATION
/// flood) written with Python's standard library.
extension IntegrationTests {
@Suite(.serialized) struct TLSTests {
    static func run(_ args: [String], input: String? = nil) throws -> (Int32, String) {
        try runProgram(args, input: input)
    }

    /// A self-signed certificate for `name` in `folder`: (cert path, key path).
    static func certificate(_ name: String, in folder: URL) throws -> (String, String) {
        let cert = folder.appendingPathComponent("\(name).crt").path
        let key = folder.appendingPathComponent("\(name).key").path
        let (status, output) = try run([
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=\(name)", "-addext", "subjectAltName=DNS:\(name)", "-keyout", key, "-out", cert,
        ])
        #expect(status == 0, "\(output)")
        return (cert, key)
    }

    /// A demo origin and a fresh folder with a certificate for `name`; `close()` when done.
    final class TLSFixture: @unchecked Sendable {
        let origin: DemoOrigin
        let originPort: Int
        let dir: URL
        let cert: String
        let key: String

        private init(origin: DemoOrigin, originPort: Int, dir: URL, cert: String, key: String) {
            (self.origin, self.originPort, self.dir, self.cert, self.key) = (origin, originPort, dir, cert, key)
        }

        static func make(_ name: String = "localhost", origin: DemoOrigin = DemoOrigin()) async throws -> TLSFixture {
            let port = try await origin.start()
            let dir = try TLSTests.folder()
            let (cert, key) = try TLSTests.certificate(name, in: dir)
            return TLSFixture(origin: origin, originPort: port, dir: dir, cert: cert, key: key)
        }

        func close() {
            let origin = self.origin
            Task { await origin.stop() }
            try? FileManager.default.removeItem(at: dir)
        }
    }

    static func folder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func oneSiteModeSpeaksHTTP2AndHTTP1OverTLS() async throws {
        let fixture = try await TLSFixture.make()
        defer { fixture.close() }
        let (originPort, dir, cert, key) = (fixture.originPort, fixture.dir, fixture.cert, fixture.key)
        let gw = try GatewayProcess(arguments: [
            "run", "--listen", "127.0.0.1:0", "--origin", "127.0.0.1:\(originPort)", "--tls-cert", cert, "--tls-key", key,
            "--admin", "127.0.0.1:0", "--state", dir.appendingPathComponent("state").path,
        ])
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        let url = "https://localhost:\(port)/echo"
        let resolve = "localhost:\(port):127.0.0.1"
        let (s2, h2) = try Self.run(["curl", "-sS", "--cacert", cert, "--resolve", resolve, "--http2", "-o", "/dev/stderr", "-w", "%{http_version} %{http_code}", url])
        #expect(s2 == 0, "\(h2)")
        #expect(h2.hasSuffix("2 200"), "\(h2)")
        #expect(h2.contains("\"x-forwarded-proto\":\"https\""))
        let (s1, h1) = try Self.run(["curl", "-sS", "--cacert", cert, "--resolve", resolve, "--http1.1", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", url])
        #expect(s1 == 0 && h1 == "1.1 200", "\(h1)")
        // Several requests on one HTTP/2 connection, one with a body.
        let (sm, many) = try Self.run([
            "curl", "-sS", "--cacert", cert, "--resolve", resolve, "--http2", "-w", "%{http_code}\n",
            "-o", "/dev/null", url, "-o", "/dev/null", url, "-o", "/dev/null", "-d", "a=1", "https://localhost:\(port)/upload",
        ])
        #expect(sm == 0)
        #expect(many.split(separator: "\n") == ["200", "200", "200"], "\(many)")
        // nghttp2's own clients: nghttp for one request, h2load for 40 over 2 connections with
        // 10 streams each in flight (one source: within the default per-address burst, which is split over the event loops).
        let (sn, nghttp) = try Self.run(["nghttp", "-v", "--no-verify-peer", "https://127.0.0.1:\(port)/echo"])
        #expect(sn == 0 && nghttp.contains(":status: 200") && nghttp.contains("x-forwarded-proto"), "\(nghttp.suffix(800))")
        let (sl, load) = try Self.run(["h2load", "-n", "40", "-c", "2", "-m", "10", "https://127.0.0.1:\(port)/echo"])
        #expect(sl == 0 && load.contains("40 succeeded, 0 failed, 0 errored") && load.contains("status codes: 40 2xx"), "\(load.suffix(800))")
    }

    /// JA4 fingerprints in the access log, the top lists, a rate limit shared by every client of
    /// one TLS stack, deny and challenge lists; the PROXY protocol in front of TLS.
    @Test func fingerprintsAreLoggedLimitedAndRuledAndProxyProtocolWorksOverTLS() async throws {
        let fixture = try await TLSFixture.make()
        defer { fixture.close() }
        let (originPort, dir, cert, key) = (fixture.originPort, fixture.dir, fixture.cert, fixture.key)
        let log = dir.appendingPathComponent("access.log").path
        let gw = try GatewayProcess(yaml: """
            listeners:
              - address: 127.0.0.1:0
                tls: { cert: \(cert), key: \(key) }
              - address: 127.0.0.1:0
                proxy_protocol: true
                tls: { cert: \(cert), key: \(key) }
            access_log: { path: \(log) }
            sites:
              - name: a
                hosts: [localhost]
                origins: [127.0.0.1:\(originPort)]
                rate_limits:
                  - { name: per-stack, key: ja4, rate: 1/m, burst: 4 }
              - name: denied
                hosts: [denied.example]
                origins: [127.0.0.1:\(originPort)]
                fingerprints: { deny: ["t1*"] }
              - name: challenged
                hosts: [challenged.example]
                origins: [127.0.0.1:\(originPort)]
                fingerprints: { challenge: ["t13d*"] }
              - name: plain
                hosts: [plain.example]
                origins: [127.0.0.1:\(originPort)]
            """, extraArguments: ["--threads", "1"])
        defer { gw.stop() }
        let ports = try gw.waitUntilListening(count: 2)
        let (admin, token) = try gw.adminLink()
        func curl(_ host: String, from source: String, _ options: [String] = ["--http2"], path: String = "/") throws -> String {
            let (_, out) = try Self.run(
                ["curl", "-sS", "-k", "--interface", source, "--resolve", "\(host):\(ports[0]):127.0.0.1", "-o", "/dev/null", "-D", "-"]
                    + options + ["https://\(host):\(ports[0])\(path)"]
            )
            return out.lowercased()
        }
        // One TLS stack from five addresses: the fifth request is over the stack's shared limit.
        var statuses: [String] = []
        for i in 2...6 { statuses.append(String(try curl("localhost", from: "127.0.0.\(i)").prefix(12))) }
        #expect(statuses.prefix(4).allSatisfy { $0.hasPrefix("http/2 200") } && statuses[4].hasPrefix("http/2 429"), "\(statuses)")
        // curl speaking HTTP/1.1 offers other ALPN values: another fingerprint, not limited.
        #expect(try curl("localhost", from: "127.0.0.7", ["--http1.1"]).hasPrefix("http/1.1 200"))
        // Deny and challenge lists.
        #expect(try curl("denied.example", from: "127.0.0.8").hasPrefix("http/2 403"))
        let challenged = try curl("challenged.example", from: "127.0.0.9")
        #expect(challenged.hasPrefix("http/2 403") && challenged.contains("x-rampart-challenge: pow"), "\(challenged)")

        // The access log carries each request's fingerprint: h2 and h1 in the first part.
        var ja4: [String] = []
        #expect(eventually {
            let lines = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n") ?? []
            ja4 = lines.compactMap { line in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["ja4"] as? String
            }
            return ja4.count >= 8
        }, "\(ja4)")
        let shape = #/^t1[23]d\d{4}(h2|h1)_[0-9a-f]{12}_[0-9a-f]{12}$/#
        #expect(ja4.allSatisfy { $0.wholeMatch(of: shape) != nil }, "\(ja4)")
        #expect(ja4.contains { $0.contains("h2_") } && ja4.contains { $0.contains("h1_") }, "\(ja4)")

        // The admin API's top list names the stack while its traffic runs.
        let burst = Task.detached {
            for _ in 0..<6 {
                _ = try? Self.run(["curl", "-sS", "-k", "--resolve", "plain.example:\(ports[0]):127.0.0.1", "--http2", "-o", "/dev/null", "-o", "/dev/null",
                    "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null"]
                    + Array(repeating: "https://plain.example:\(ports[0])/", count: 8))
                try? await Task.sleep(for: .milliseconds(300))
            }
        }
        var top = ""
        #expect(eventually(timeout: 8) {
            top = (try? Self.run(["curl", "-sS", "-H", "Authorization: Bearer \(token)", "http://127.0.0.1:\(admin)/api/top"]).1) ?? ""
            return top.contains(#""fingerprints":[{"#)
        }, "\(top.prefix(800))")
        await burst.value

        // PROXY protocol in front of TLS: the address in the header is the client.
        let proxied = """
            import socket,ssl
            s=socket.create_connection(('127.0.0.1',\(ports[1])),timeout=5)
            s.sendall(b'PROXY TCP4 203.0.113.9 127.0.0.1 40000 443\\r\\n')
            c=ssl.create_default_context();c.check_hostname=False;c.verify_mode=ssl.CERT_NONE
            t=c.wrap_socket(s,server_hostname='plain.example')
            t.sendall(b'GET /echo HTTP/1.1\\r\\nHost: plain.example\\r\\nConnection: close\\r\\n\\r\\n')
            d=b''
            while True:
                b=t.recv(65536)
                if not b: break
                d+=b
            print(d.decode(errors='replace'))
            """
        let (status, reply) = try Self.run(["python3", "-c", proxied])
        #expect(status == 0 && reply.hasPrefix("HTTP/1.1 200"), "\(reply.prefix(300))")
        #expect(reply.contains(#""x-forwarded-for":"203.0.113.9""#), "\(reply.prefix(600))")
        // Without the header, the PROXY listener refuses the connection.
        let (_, bare) = try Self.run(["curl", "-sS", "-k", "--resolve", "plain.example:\(ports[1]):127.0.0.1", "https://plain.example:\(ports[1])/"])
        #expect(!bare.contains("200"), "\(bare)")
    }

    /// Origins over TLS: the certificate is checked against the configured CA and name; a wrong
    /// CA or name fails the handshake, the client gets 503 and the log says why.
    @Test func originsOverTLSAreVerified() async throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (originCert, originKey) = try Self.certificate("origin.test", in: dir)
        let (otherCert, _) = try Self.certificate("other.test", in: dir)
        let origin = try ToolProcess("tls_origin.py", [originCert, originKey])
        defer { origin.stop() }
        let port = try origin.port()
        let gw = try GatewayProcess(yaml: """
            listeners:
              - address: 127.0.0.1:0
            sites:
              - name: good
                hosts: [good.example]
                origins: [{ address: 127.0.0.1:\(port), tls: { ca: \(originCert), server_name: origin.test } }]
                health_check: { enabled: false }
              - name: wrong-ca
                hosts: [ca.example]
                origins: [{ address: 127.0.0.1:\(port), tls: { ca: \(otherCert), server_name: origin.test } }]
                health_check: { enabled: false }
              - name: wrong-name
                hosts: [name.example]
                origins: [{ address: 127.0.0.1:\(port), tls: { ca: \(originCert), server_name: elsewhere.test } }]
                health_check: { enabled: false }
              - name: unchecked
                hosts: [unchecked.example]
                origins: [{ address: 127.0.0.1:\(port), tls: { verify: false } }]
                health_check: { enabled: false }
            """, extraArguments: ["--threads", "1"])
        defer { gw.stop() }
        let gport = try gw.waitUntilListening()[0]
        func get(_ host: String) throws -> String {
            try Self.run(["curl", "-sS", "-H", "Host: \(host)", "-w", "\n%{http_code}", "http://127.0.0.1:\(gport)/page?x=1"]).1
        }
        let good = try get("good.example")
        #expect(good.hasSuffix("\n200") && good.contains(#""origin": "tls""#) && good.contains(#""path": "/page?x=1""#), "\(good)")
        #expect(good.contains(#""x-forwarded-for": "127.0.0.1""#), "\(good)")
        // Several requests reuse the pooled TLS connection.
        for _ in 0..<3 { #expect(try get("good.example").hasSuffix("\n200")) }
        #expect(try get("ca.example").hasSuffix("\n503"))
        #expect(try get("name.example").hasSuffix("\n503"))
        #expect(eventually { gw.stderrText.contains("TLS handshake with the origin failed") }, "\(gw.stderrText.suffix(1500))")
        // verify: false reaches the self-signed origin, and the log says so at start.
        #expect(try get("unchecked.example").hasSuffix("\n200"))
        #expect(gw.stderrText.contains("origin certificate is not verified") && gw.stderrText.contains("site=unchecked"))

        // A CA file without certificates is refused at start, naming the site and the file.
        let empty = dir.appendingPathComponent("empty.pem").path
        try "not a certificate\n".write(toFile: empty, atomically: true, encoding: .utf8)
        let bad = try GatewayProcess(yaml: """
            listeners: [{ address: 127.0.0.1:0 }]
            sites:
              - name: s
                hosts: ["*"]
                origins: [{ address: 127.0.0.1:\(port), tls: { ca: \(empty) } }]
            """)
        defer { bad.stop() }
        #expect(bad.waitForExit() != 0)
        #expect(bad.stderrText.contains("site s") && bad.stderrText.contains(empty), "\(bad.stderrText.suffix(800))")
    }

    /// A renewed certificate is picked up on SIGHUP (one-site mode too) for new connections, while
    /// a connection opened before keeps being served.
    @Test func certificatesAreReloadedOnSIGHUPWithoutDroppingConnections() async throws {
        let fixture = try await TLSFixture.make()
        defer { fixture.close() }
        let gw = try GatewayProcess(arguments: [
            "run", "--listen", "127.0.0.1:0", "--origin", "127.0.0.1:\(fixture.originPort)", "--tls-cert", fixture.cert, "--tls-key", fixture.key,
            "--admin", "127.0.0.1:0", "--state", fixture.dir.appendingPathComponent("state").path,
        ])
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        func subject() throws -> String {
            let (_, out) = try Self.run(["openssl", "s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost"], input: "")
            return out.split(separator: "\n").first { $0.hasPrefix("subject=") }.map(String.init) ?? out
        }
        #expect(try subject().contains("localhost"))
        // A keep-alive HTTPS connection that asks once now and once after the reload.
        let held = Task.detached {
            try Self.run(["python3", "-c", """
                import socket,ssl,time
                c=ssl.create_default_context();c.check_hostname=False;c.verify_mode=ssl.CERT_NONE
                s=c.wrap_socket(socket.create_connection(('127.0.0.1',\(port)),timeout=10),server_hostname='localhost')
                def get():
                    s.sendall(b'GET /echo HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n')
                    d=b''
                    while b'\\r\\n\\r\\n' not in d: d+=s.recv(65536)
                    head,_,body=d.partition(b'\\r\\n\\r\\n')
                    n=int([l.split(b':')[1] for l in head.split(b'\\r\\n') if l.lower().startswith(b'content-length')][0])
                    while len(body)<n: body+=s.recv(65536)
                    print(head.split(b"\\r\\n")[0].decode(), flush=True)
                get(); time.sleep(2.5); get()
                """])
        }
        try await Task.sleep(for: .milliseconds(700))
        let (renewedCert, renewedKey) = try Self.certificate("renewed.example", in: fixture.dir)
        try FileManager.default.removeItem(atPath: fixture.cert)
        try FileManager.default.removeItem(atPath: fixture.key)
        try FileManager.default.copyItem(atPath: renewedCert, toPath: fixture.cert)
        try FileManager.default.copyItem(atPath: renewedKey, toPath: fixture.key)
        gw.signal(SIGHUP)
        #expect(eventually { gw.stderrText.contains("configuration reloaded") })
        #expect(try subject().contains("renewed.example"))
        let (status, out) = try await held.value
        #expect(status == 0 && out.components(separatedBy: "HTTP/1.1 200").count == 3, "\(out)")
    }

    @Test func aHandshakeFloodFromOneSourceIsCutBeforeTheCryptography() async throws {
        let fixture = try await TLSFixture.make()
        defer { fixture.close() }
        let (originPort, dir, cert, key) = (fixture.originPort, fixture.dir, fixture.cert, fixture.key)
        let gw = try GatewayProcess(yaml: """
            listeners:
              - address: 127.0.0.1:0
                tls: { cert: \(cert), key: \(key), handshake_rate: 1/m, handshake_burst: 3 }
            sites:
              - name: a
                hosts: [localhost]
                origins: [127.0.0.1:\(originPort)]
            """, extraArguments: ["--threads", "1"])
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        func handshake(from source: String) throws -> Bool {
            let (status, _) = try Self.run([
                "python3", "-c",
                "import socket,ssl;c=ssl.create_default_context();c.check_hostname=False;c.verify_mode=ssl.CERT_NONE;"
                    + "s=socket.create_connection(('127.0.0.1',\(port)),timeout=3,source_address=('\(source)',0));c.wrap_socket(s,server_hostname='localhost')",
            ])
            return status == 0
        }
        let results = try (0..<8).map { _ in try handshake(from: "127.0.0.20") }
        #expect(results.prefix(3).allSatisfy { $0 }, "\(results)")
        #expect(results.suffix(3).allSatisfy { !$0 }, "\(results)")
        #expect(try handshake(from: "127.0.0.21"))
        #expect(eventually { gw.stderrText.contains("reason=tls_handshake_limited") })
    }

    @Test func sniChoosesTheSitesCertificateAndFloodsAreCutOff() async throws {
        let fixture = try await TLSFixture.make()
        defer { fixture.close() }
        let (originPort, dir, defaultCert, defaultKey) = (fixture.originPort, fixture.dir, fixture.cert, fixture.key)
        let (bCert, bKey) = try Self.certificate("b.example", in: dir)
        let gw = try GatewayProcess(yaml: """
            listeners:
              - address: 127.0.0.1:0
                tls: { cert: \(defaultCert), key: \(defaultKey) }
            bans: { strikes: 10, strikes_per_second: 0, duration: 30s }
            default_site: a
            sites:
              - name: a
                hosts: [localhost]
                origins: [127.0.0.1:\(originPort)]
                hsts: max-age=31536000
              - name: b
                hosts: [b.example]
                origins: [127.0.0.1:\(originPort)]
                tls: { cert: \(bCert), key: \(bKey) }
            """, extraArguments: ["--threads", "1"])
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        for (name, expected) in [("b.example", "CN = b.example"), ("localhost", "CN = localhost"), ("other.example", "CN = localhost")] {
            let (_, out) = try Self.run(["openssl", "s_client", "-connect", "127.0.0.1:\(port)", "-servername", name, "-alpn", "h2"], input: "")
            #expect(out.contains("subject=\(expected)") || out.contains("subject=/\(expected.replacingOccurrences(of: " = ", with: "="))"), "\(name): \(out.prefix(600))")
            #expect(out.contains("ALPN protocol: h2"))
        }
        let resolve = "localhost:\(port):127.0.0.1"
        let (_, headers) = try Self.run(["curl", "-sS", "-D", "-", "-o", "/dev/null", "--cacert", defaultCert, "--resolve", resolve, "--http2", "https://localhost:\(port)/"])
        #expect(headers.lowercased().contains("strict-transport-security: max-age=31536000"), "\(headers)")

        // Rapid reset from one client: GOAWAY and close; meanwhile a normal client is served.
        let flood = Task.detached { try Self.run(["python3", BrowserTests.repo.appendingPathComponent("Tests/h2/h2flood.py").path, String(port), "rapid-reset", "2000", "127.0.0.2"]) }
        let (status, page) = try Self.run(["curl", "-sS", "--cacert", defaultCert, "--resolve", resolve, "--http2", "-o", "/dev/null", "-w", "%{http_code}", "https://localhost:\(port)/"])
        #expect(status == 0 && page == "200")
        let (_, reset) = try await flood.value
        #expect(reset.contains("GOAWAY") && reset.contains("CLOSED"), "\(reset)")
        #expect(eventually { gw.stderrText.contains("reason=http2_flood") && gw.stderrText.contains("rapid reset") })

        // A CONTINUATION flood is cut off after a few frames, memory bounded.
        let (_, cont) = try Self.run(["python3", BrowserTests.repo.appendingPathComponent("Tests/h2/h2flood.py").path, String(port), "continuation", "100000", "127.0.0.3"])
        #expect(cont.contains("CLOSED"), "\(cont)")
        let sent = cont.split(separator: "\n").first { $0.hasPrefix("SENT ") }.flatMap { Int($0.dropFirst(5)) } ?? 0
        #expect(sent < 100_000, "the server kept reading \(sent) CONTINUATION frames")
        // The flooding source is banned at accept after these; others are not.
        #expect(eventually { gw.stderrText.contains("source banned") })
    }
}
}
