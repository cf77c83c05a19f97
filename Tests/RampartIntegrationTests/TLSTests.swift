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

    static func folder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func oneSiteModeSpeaksHTTP2AndHTTP1OverTLS() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (cert, key) = try Self.certificate("localhost", in: dir)
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
    }

    @Test func aHandshakeFloodFromOneSourceIsCutBeforeTheCryptography() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (cert, key) = try Self.certificate("localhost", in: dir)
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
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (defaultCert, defaultKey) = try Self.certificate("localhost", in: dir)
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
