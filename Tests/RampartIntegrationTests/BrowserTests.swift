import Foundation
import RampartCore
import RampartDemoOrigin
import Testing

#if canImport(Glibc)
import Glibc
#endif

let browserAvailable = ProcessInfo.processInfo.environment["RAMPART_REQUIRE_BROWSER"] == "1"
    || ["/usr/bin/chromium", "/usr/bin/chromium-browser"].contains { FileManager.default.isExecutableFile(atPath: $0) }

/// Debian's headless chromium, driven over the DevTools protocol by `Tests/browser/cdp.py`:
/// a real browser solves the challenge, a browser without JavaScript waits its way in, and the
/// dashboard fills with live data and its controls act on the gateway. `.ci/run` installs
/// chromium and sets RAMPART_REQUIRE_BROWSER=1, so CI cannot skip these; elsewhere they run
/// when chromium is present.
extension IntegrationTests {
@Suite(.serialized, .enabled(if: browserAvailable)) struct BrowserTests {
    static var repo: URL {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) { dir = dir.deletingLastPathComponent() }
        return dir
    }

    /// Screenshots and page dumps go here.
    static var outputFolder: URL {
        let dir = repo.appendingPathComponent(".build/test-output")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Runs the browser driver; returns its exit status and output.
    static func browse(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try runProgram(["python3", repo.appendingPathComponent("Tests/browser/cdp.py").path] + arguments)
    }

    @Test func aBrowserSolvesTheChallengeAndOneWithoutJavaScriptWaitsItsWayIn() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let gw = try GatewayProcess(
            yaml: DefenceTests.yaml(origin: originPort, site: "    mode: under_attack\n    challenge: { tier: pow, wait: 2s }")
                .replacingOccurrences(of: "hosts: [example.org]", with: "hosts: [example.org, 127.0.0.1]")
        )
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        #expect(eventually { gw.stderrText.contains("to=under_attack") })
        let url = "http://127.0.0.1:\(port)/news?item=42"

        let js = try Self.browse([url, "--wait-for", "Page /news", "--timeout", "30", "--screenshot", Self.outputFolder.appendingPathComponent("challenge-solved.png").path])
        #expect(js.status == 0, "\(js.output.prefix(3000))")
        #expect(js.output.contains("URL \(url)"))

        let noJS = try Self.browse([url, "--no-js", "--wait-for", "Page /news", "--timeout", "30"])
        #expect(noJS.status == 0, "\(noJS.output.prefix(3000))")
        let seconds = noJS.output.split(separator: "\n").first { $0.hasPrefix("SECONDS ") }.flatMap { Double($0.dropFirst(8)) } ?? 0
        #expect(seconds >= 2 && seconds < 10, "the no-JavaScript path took \(seconds) s")

        // A flood client that keeps no cookies never reaches the origin.
        let before = origin.stats.requests
        let flood = try RawClient(port: port, source: "127.0.3.3")
        for i in 0..<30 {
            let r = flood.request("GET", "/news?item=\(i)", headers: ["User-Agent: Mozilla/5.0", "Accept: text/html"])
            #expect(r?.status == 403)
        }
        #expect(origin.stats.requests == before)
    }

    @Test func theDashboardShowsLiveTrafficAndItsControlsWork() async throws {
        let origin = DemoOrigin()
        let originPort = try await origin.start()
        defer { Task { await origin.stop() } }
        let gw = try GatewayProcess(yaml: AdminTests.siteYAML.replacingOccurrences(of: "ORIGIN", with: String(originPort)))
        defer { gw.stop() }
        let port = try gw.waitUntilListening()[0]
        let (admin, token) = try gw.adminLink()

        // Traffic while the page is open: a few clients, about 20 requests a second, for 15 s at most.
        let traffic = Task.detached {
            let deadline = Date().addingTimeInterval(15)
            var clients = (0..<4).compactMap { try? RawClient(port: port, source: "127.0.5.\($0 + 10)") }
            var n = 0
            while Date() < deadline, !Task.isCancelled {
                let i = n % clients.count
                if clients[i].request("GET", "/?n=\(n)") == nil, let fresh = try? RawClient(port: port, source: "127.0.5.\(i + 10)") { clients[i] = fresh }
                n += 1
                usleep(50_000)
            }
        }
        defer { traffic.cancel() }

        let shot = Self.outputFolder.appendingPathComponent("dashboard.png").path
        let selectMode = #"(()=>{const s=document.querySelector('#site-www select');s.value='under_attack';s.dispatchEvent(new Event('change'));return true})()"#
        let clickBan = #"(()=>{const b=document.querySelector('button.ban');b.click();return b!==null})()"#
        let run = try Self.browse([
            "http://127.0.0.1:\(admin)/?token=\(token)",
            "--wait-for", "Site www", "--wait-for", "live · ", "--wait-for", "127.0.5.1",
            // Each heavy hitter says what it is (rendered rows, not the page's script).
            "--wait-for", "<td>subnet</td><td>127.0.5.0/24</td>",
            "--eval", selectMode, "--eval", clickBan,
            "--then-wait-for", "class=\"mode under_attack\"", "--then-wait-for", "1 bans in force",
            "--timeout", "30", "--screenshot", shot,
        ])
        #expect(run.status == 0, "\(run.output.prefix(4000))")
        #expect(FileManager.default.fileExists(atPath: shot))

        // The clicks reached the gateway.
        let auth = ["Authorization: Bearer \(token)"]
        let sites = try #require(try RawClient(port: admin).request("GET", "/api/sites", headers: auth))
        #expect(String(decoding: sites.body, as: UTF8.self).contains(#""override":"under_attack""#))
        let bans = try #require(try RawClient(port: admin).request("GET", "/api/bans", headers: auth))
        #expect(String(decoding: bans.body, as: UTF8.self).contains(#""reason":"dashboard""#))
    }
}
}
