import Foundation
import NIOCore
import RampartCore
import RampartDemoOrigin
import RampartDrill
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// NIS2 incident reports from a real incident: a short S1 flood over TLS through the real binary,
/// operator actions during it, then every stage and format through the admin API and through
/// `rampart report` (online, and offline from the state folder), each checked by the standard
/// tool of its format: the Python `stix2` library, `pymisp`, and headless chromium.
extension IntegrationTests {
@Suite(.serialized) struct IncidentReportTests {
    static func yaml(origin: Int, cert: String, key: String) -> String {
        """
        listeners:
          - address: 127.0.0.1:0
            tls: { cert: \(cert), key: \(key) }
        sites:
          - name: www
            hosts: [example.org]
            origins: [127.0.0.1:\(origin)]
            health_check: { enabled: false }
            detection: { min_rate: 20/s, calm_under_attack: 2s, calm_elevated: 2s }
        bans: { strikes: 2000 }
        reports:
          sources: full
          organisation: "Test <Tax> & Customs Office"
          sector: public-administration
        """
    }

    /// GET on the admin API with the bearer token.
    static func get(_ admin: Int, _ token: String, _ path: String) throws -> HTTPReply {
        let c = try RawClient(port: admin)
        c.setTimeout(20)
        return try #require(c.request("GET", path, headers: ["Authorization: Bearer \(token)"]), "GET \(path)")
    }

    static func call(_ admin: Int, _ token: String, _ method: String, _ path: String, _ body: String = "") throws -> Int {
        let reply = try RawClient(port: admin).request(method, path, headers: ["Authorization: Bearer \(token)", "Content-Type: application/json"], body: body)
        return reply?.status ?? 0
    }

    static func validate(_ kind: String, _ file: URL) throws -> (Int32, String) {
        try runProgram(["python3", BrowserTests.repo.appendingPathComponent("Tests/tools/validate_report.py").path, kind, file.path])
    }

    static func utc(_ unix: Int) -> String { ReportTime.rfc3339(Int64(unix)) }

    @Test func aRealFloodGivesReportsInEveryFormatThatStandardToolsAccept() async throws {
        let fixture = try await TLSTests.TLSFixture.make("example.org", origin: DemoOrigin(configuration: DrillRunTests.originConfig()))
        defer { fixture.close() }
        let gw = try GatewayProcess(yaml: Self.yaml(origin: fixture.originPort, cert: fixture.cert, key: fixture.key))
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        let (admin, token) = try gw.adminLink()

        // S1 in small over TLS (so JA4 fingerprints are recorded): 4 sources flooding, 3 users.
        var plan = DrillPlan(
            target: try DrillSafety.loopbackTarget("127.0.0.1:\(port)"),
            originStats: try DrillSafety.loopbackTarget("127.0.0.1:\(fixture.originPort)"),
            scenario: .s1
        )
        plan.tls = true
        plan.warmup = 2
        plan.attack = 3
        plan.cooldown = 1
        plan.legitUsers = 3
        plan.apiClients = 0
        plan.maxRequests = 40_000
        let running = Task { await DrillRunner(plan: plan).run() }
        // Operator actions while the flood's incident is open: hold the mode, ban and lift a ban;
        // once the flood is over, back to automatic.
        #expect(eventually(timeout: 15) { gw.stderrText.contains("to=under_attack") || gw.stderrText.contains("to=elevated") }, "\(gw.stderrText.suffix(2000))")
        #expect(try Self.call(admin, token, "PUT", "/api/sites/www/mode", #"{"mode":"under_attack"}"#) == 200)
        #expect(try Self.call(admin, token, "POST", "/api/bans", #"{"address":"192.0.2.77","ttl":60,"reason":"report test"}"#) == 201)
        #expect(try Self.call(admin, token, "DELETE", "/api/bans/192.0.2.77") == 204)
        let drill = await running.value
        #expect(drill.attackSent > 100)
        #expect(try Self.call(admin, token, "PUT", "/api/sites/www/mode", #"{"mode":"auto"}"#) == 200)
        var list: [[String: Any]] = []
        #expect(eventually(timeout: 30) {
            list = (try? JSONSerialization.jsonObject(with: Data(Self.get(admin, token, "/api/incidents").body))) as? [[String: Any]] ?? []
            return list.first?["end"] is Int
        }, "the incident did not close: \(list)")
        #expect(list.count == 1, "\(list)")
        let id = try #require(list.first?["id"] as? Int)
        // Lists stay light: no series or events there.
        #expect(list.first?["series"] == nil && list.first?["events"] == nil)
        let incident = try #require(Self.get(admin, token, "/api/incidents/\(id)").json as [String: Any]?)
        let start = try #require(incident["start"] as? Int)
        let peak = try #require(incident["peakRequestsPerSecond"] as? Int)
        let requests = try #require(incident["requests"] as? Int)
        let series = try #require(incident["series"] as? [String: Any])
        let points = try #require(series["points"] as? [[String: Any]])
        #expect(!points.isEmpty && points.count <= 3600)
        #expect(points.compactMap { $0["requests"] as? Int }.max() == peak)
        #expect(points.compactMap { $0["requests"] as? Int }.reduce(0, +) == requests)
        let kinds = (incident["events"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String }
        #expect(kinds.contains("mode") && kinds.contains("operator_mode") && kinds.contains("operator_ban") && kinds.contains("operator_unban"), "\(kinds)")

        let out = BrowserTests.outputFolder.appendingPathComponent("incident-report")
        try? FileManager.default.removeItem(at: out)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)

        // Every stage and format from the admin API, with its type and file name.
        var texts: [String: String] = [:]
        for stage in ReportStage.allCases {
            for format in ReportFormat.allCases {
                let r = try Self.get(admin, token, "/api/incidents/\(id)/report?format=\(format.rawValue)&stage=\(stage.rawValue)")
                #expect(r.status == 200, "\(format) \(stage): \(r.status) \(r.text.prefix(300))")
                #expect(r.header("content-type") == format.contentType)
                let name = format.fileName(incident: id, stage: stage)
                #expect(r.header("content-disposition")?.contains("filename=\"\(name)\"") == true)
                let file = out.appendingPathComponent(name)
                try r.text.write(to: file, atomically: true, encoding: .utf8)
                texts[name] = r.text
                switch format {
                case .stix:
                    let (status, output) = try Self.validate("stix", file)
                    #expect(status == 0, "\(name): \(output)")
                    #expect(output.contains("identity=1") && output.contains("report=1") && output.contains("attack-pattern=1"), "\(output)")
                    if stage != .earlyWarning {
                        #expect(output.contains("PATTERN [ipv4-addr:value = '127.128."), "\(output)")
                        #expect(output.contains("PATTERN [network-traffic:x_ja4 = 't13"), "\(output)")
                        #expect(output.contains("observed-data=") && output.contains("sighting="), "\(output)")
                    } else {
                        #expect(!output.contains("indicator="), "\(output)")
                    }
                case .misp:
                    let (status, output) = try Self.validate("misp", file)
                    #expect(status == 0, "\(name): \(output)")
                    #expect(output.contains(#"TAG nis2:impact-sectors-impacted="public-administration""#), "\(output)")
                    #expect(output.contains(#"TAG nis2:nature-root-cause="malicious-actions""#), "\(output)")
                    if stage != .earlyWarning { #expect(output.contains("ATTRIBUTE ip-src Network activity 127.128."), "\(output)") }
                default:
                    break
                }
            }
        }
        // Bad requests are refused clearly.
        #expect(try Self.get(admin, token, "/api/incidents/\(id)/report?format=pdf").status == 400)
        #expect(try Self.get(admin, token, "/api/incidents/\(id)/report?format=json&stage=later").status == 400)
        #expect(try Self.get(admin, token, "/api/incidents/99999/report?format=json").status == 404)
        #expect(try RawClient(port: admin).request("GET", "/api/incidents/\(id)/report")?.status == 401)

        // The JSON agrees with the incident's own record.
        let finalJSON = texts["rampart-incident-\(id)-final.json"] ?? ""
        let json = try #require(try JSONSerialization.jsonObject(with: Data(finalJSON.utf8)) as? [String: Any])
        let deadlines = try #require(json["deadlines"] as? [String: Any])
        #expect(deadlines["early_warning"] as? String == Self.utc(start + 86_400))
        #expect(deadlines["notification"] as? String == Self.utc(start + 3 * 86_400))
        #expect((json["incident"] as? [String: Any])?["awareness"] as? String == Self.utc(start))
        let figures = try #require((json["assessment"] as? [String: Any])?["figures"] as? [String: Any])
        #expect(figures["peak_requests_per_second"] as? Int == peak && figures["total_requests"] as? Int == requests)
        #expect(figures["to_origin"] as? Int == incident["toOrigin"] as? Int && figures["limited"] as? Int == incident["limited"] as? Int)
        let timeline = (json["timeline"] as? [[String: Any]] ?? [])
        #expect(timeline.contains { $0["kind"] as? String == "operator_ban" && $0["address"] as? String == "192.0.2.77" })
        let final = try #require(json["final"] as? [String: Any])
        #expect((final["sign_off"] as? [String: Any])?["to_fill"] as? Bool == true)
        let html = texts["rampart-incident-\(id)-final.html"] ?? ""
        #expect(html.contains("Test &lt;Tax&gt; &amp; Customs Office") && html.contains("\(peak) requests/s"))
        #expect(html.contains(Self.utc(start + 86_400)))

        // Legitimate users' addresses (the drill's 127.1.0.0/16 range) appear in no report.
        // (The attack comes from 127.128.0.0/9, whose addresses never contain "127.1.".)
        #expect(texts.count == 12)
        for (name, text) in texts {
            #expect(!text.contains("127.1."), "\(name) names a legitimate user")
        }

        // The HTML renders in headless chromium without JavaScript; the screenshot is an artefact.
        if browserAvailable {
            let page = out.appendingPathComponent("rampart-incident-\(id)-final.html")
            let shot = out.appendingPathComponent("incident-report-final.png")
            let (status, output) = try BrowserTests.browse(["file://\(page.path)", "--no-js", "--wait-for", "Final report", "--timeout", "30", "--screenshot", shot.path])
            #expect(status == 0, "\(output.prefix(2000))")
            #expect(FileManager.default.fileExists(atPath: shot.path))
        }

        // The dashboard lists the incident with its report links, and a link works with the
        // dashboard's cookie alone.
        if browserAvailable {
            let fetchFinal = #"(()=>{const a=document.querySelector('a.report[href*="format=json&stage=final"]');fetch(a.href,{credentials:'same-origin'}).then(r=>r.text().then(t=>{const m=document.createElement('p');m.textContent=(r.status===200&&t.includes('Final report (NIS2'))?'report-fetched-ok':'report-fetch-failed '+r.status;document.body.appendChild(m)}));return true})()"#
            let (status, output) = try BrowserTests.browse([
                "http://127.0.0.1:\(admin)/?token=\(token)", "--wait-for", "report?format=misp", "--eval", fetchFinal,
                "--then-wait-for", "report-fetched-ok", "--timeout", "30", "--screenshot", out.appendingPathComponent("dashboard-incident-links.png").path,
            ])
            #expect(status == 0, "\(output.suffix(3000))")
        }

        // `rampart report` against the running gateway.
        let a = ["--admin", "127.0.0.1:\(admin)", "--token", token]
        for format in ReportFormat.allCases {
            let online = out.appendingPathComponent("cli-online.\(format.rawValue)")
            let (s1, o1) = try runProgram(["report", String(id), "--format", format.rawValue, "--stage", "notification", "--output", online.path] + a,
                                          executable: Binary.rampart)
            #expect(s1 == 0, "\(o1)")
            let text = (try? String(contentsOf: online, encoding: .utf8)) ?? ""
            switch format {
            case .html: #expect(text.hasPrefix("<!DOCTYPE html>") && text.contains("Incident notification (NIS2 Art. 23(4)(b))"))
            case .json: #expect((try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])?["stage"] as? String == "notification")
            case .stix, .misp: #expect(try Self.validate(format.rawValue, online).0 == 0)
            }
            // Owner-only: a report names attack sources.
            let mode = (try? FileManager.default.attributesOfItem(atPath: online.path)[.posixPermissions] as? Int) ?? 0
            #expect(mode == 0o600, "\(String(mode, radix: 8))")
        }
        let (s2, o2) = try runProgram(["report", "99999", "--format", "json"] + a, executable: Binary.rampart)
        #expect(s2 != 0 && o2.contains("no such incident"), "\(o2)")
        let (s3, o3) = try runProgram(["report", String(id), "--format", "docx"] + a, executable: Binary.rampart)
        #expect(s3 != 0 && o3.contains("--format must be"), "\(o3)")

        // And offline from the state folder once the gateway has stopped.
        gw.signal(SIGTERM)
        #expect(gw.waitForExit() == 0)
        let state = gw.directory.appendingPathComponent("state").path
        for (format, check) in [("misp", "misp"), ("stix", "stix")] {
            let file = out.appendingPathComponent("cli-offline.\(format).json")
            let (s, o) = try runProgram(["report", String(id), "--offline", "--state", state, "--config", gw.configURL.path, "--format", format, "--stage", "final", "--output", file.path],
                                        executable: Binary.rampart)
            #expect(s == 0, "\(o)")
            let (vs, vo) = try Self.validate(check, file)
            #expect(vs == 0, "\(vo)")
            if format == "misp" { #expect(vo.contains(#"TAG nis2:impact-sectors-impacted="public-administration""#), "\(vo)") }
        }
        let (s4, offlineJSON) = try runProgram(["report", String(id), "--offline", "--state", state, "--format", "json", "--stage", "notification"], executable: Binary.rampart)
        #expect(s4 == 0)
        // Without --config it says which disclosure it used (standard error, before the report).
        #expect(offlineJSON.hasPrefix("no --config: sources are shown in full"), "\(offlineJSON.prefix(300))")
        let body = offlineJSON.firstIndex(of: "{").map { String(offlineJSON[$0...]) } ?? ""
        let offline = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        #expect(((offline["assessment"] as? [String: Any])?["figures"] as? [String: Any])?["total_requests"] as? Int == requests)
        // Without --config the organisation is a marked blank, never invented.
        #expect(((offline["reporter"] as? [String: Any])?["organisation"] as? [String: Any])?["to_fill"] as? Bool == true)
        // Pseudonymised sources, keyed by the state folder's signing key.
        let hashedConfig = out.appendingPathComponent("hashed.yaml")
        try (try String(contentsOf: gw.configURL, encoding: .utf8)).replacingOccurrences(of: "sources: full", with: "sources: hashed")
            .write(to: hashedConfig, atomically: true, encoding: .utf8)
        let (s6, hashed) = try runProgram(["report", String(id), "--offline", "--state", state, "--config", hashedConfig.path, "--format", "json", "--stage", "final"],
                                          executable: Binary.rampart)
        #expect(s6 == 0 && hashed.contains("anon-") && hashed.contains("hashed"), "\(hashed.prefix(500))")
        #expect(!hashed.contains("127.128.") && !hashed.contains("192.0.2.77"))
        let (s8, subnet) = try runProgram(["report", String(id), "--offline", "--state", state, "--sources", "subnet", "--format", "misp", "--stage", "final"], executable: Binary.rampart)
        #expect(s8 == 0 && subnet.contains("127.128.2.0/24") && !subnet.contains("127.128.2.1\""), "\(subnet.prefix(600))")
        #expect(try runProgram(["report", String(id), "--offline", "--state", state, "--sources", "all"], executable: Binary.rampart).0 != 0)
        // Without --offline, a gateway that no longer answers sends the command to the state folder.
        let (s7, fallback) = try runProgram(["report", String(id), "--state", state, "--format", "stix", "--stage", "early-warning"] + a, executable: Binary.rampart)
        #expect(s7 == 0 && fallback.contains("cannot reach the gateway") && fallback.contains("state.sqlite instead") && fallback.contains("\"type\" : \"bundle\""),
                "\(fallback.prefix(600))")
        let (s5, o5) = try runProgram(["report", String(id), "--offline", "--state", "/nonexistent-rampart"], executable: Binary.rampart)
        #expect(s5 != 0 && o5.contains("no readable state database"), "\(o5)")
    }
}
}
