import ArgumentParser
import Foundation
import NIOCore
import RampartCore
import RampartDemoOrigin
import RampartDrill

@main
struct DrillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rampart-drill",
        abstract: "Loopback-only attack simulator: measures how well a gateway keeps legitimate users served.",
        subcommands: [RunScenario.self, Origin.self],
        defaultSubcommand: RunScenario.self
    )
}

struct RunScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run scenarios against a gateway on loopback and report goodput, leakage and cost."
    )

    @Option(name: .long, help: "Gateway address (loopback only), e.g. 127.0.0.1:8080; several, comma-separated, for the nodes of a fleet (each source keeps to one).")
    var target: String

    @Option(name: .long, help: "Origin address for its counters (loopback only); start it with 'rampart-drill origin'.")
    var origin: String

    @Option(name: .long, parsing: .upToNextOption, help: "Scenarios: S1 S2 S3 S4 S5 S6 S7 S8 S9 S11 S12 (default: S1 S2 S3 S4 S5 S8; S6 needs --tls).")
    var scenario: [String] = ["S1", "S2", "S3", "S4", "S5", "S8"]

    @Option(name: .long, help: "Warm-up seconds (legit only).") var warmup: Double = 5
    @Option(name: .long, help: "Attack seconds.") var attack: Double = 20
    @Option(name: .long, help: "Cool-down seconds (legit only).") var cooldown: Double = 5
    @Option(name: .long, help: "Origin capacity, requests per second.") var capacity: Double = 200
    @Option(name: .long, help: "Attack rate as a multiple of the origin capacity.") var intensity: Double = 10
    @Option(name: .long, help: "Simulated browser users.") var users: Int = 30
    @Option(name: .long, help: "Simulated API clients (keys drill-api-key-0000, -0001, ...).") var apiClients: Int = 5
    @Option(name: .long, help: "Simulated logged-in members (they log in with the drill's member password).") var members: Int = 5
    @Option(name: .long, help: "Gateway process id, to sample its CPU and memory.") var gatewayPid: Int32?
    @Option(name: .long, help: "Label for the report (e.g. rampart, nginx).") var label: String?
    @Option(name: .long, help: "Write the reports as JSON here.") var json: String?
    @Option(name: .long, help: "Write a self-contained HTML report here.") var html: String?
    @Option(name: .long, help: "Hard cap on requests sent per scenario.") var maxRequests: Int = 2_000_000
    @Flag(name: .long, help: "The target speaks TLS (certificates are not verified: loopback test certificates). S6 needs it.")
    var tls = false

    func run() async throws {
        let targetAddresses: [SocketAddress]
        let originAddress: SocketAddress
        do {
            targetAddresses = try DrillSafety.loopbackTargets(target)
            originAddress = try DrillSafety.loopbackTarget(origin)
        } catch {
            FileHandle.standardError.write(Data("rampart-drill: \(error.description)\n".utf8))
            throw ExitCode(2)
        }
        var kinds: [ScenarioKind] = []
        for s in scenario {
            guard let k = ScenarioKind(rawValue: s.uppercased()) else {
                throw ValidationError("unknown scenario '\(s)'; choose from \(ScenarioKind.allCases.map(\.rawValue).joined(separator: " "))")
            }
            if k == .s6, !tls { throw ValidationError("S6 floods HTTP/2 over TLS: give --tls and a TLS target") }
            kinds.append(k)
        }
        guard warmup >= 0, attack > 0, cooldown >= 0, warmup + attack + cooldown <= 3600 else {
            throw ValidationError("phases must be non-negative, the attack positive, and the whole run at most an hour")
        }
        var reports: [DrillReport] = []
        for kind in kinds {
            var plan = DrillPlan(targets: targetAddresses, originStats: originAddress, scenario: kind)
            plan.warmup = warmup
            plan.attack = attack
            plan.cooldown = cooldown
            plan.originCapacity = capacity
            plan.intensity = intensity
            plan.legitUsers = users
            plan.apiClients = apiClients
            plan.members = max(0, members)
            plan.gatewayPID = gatewayPid
            plan.maxRequests = maxRequests
            plan.tls = tls
            FileHandle.standardError.write(Data("rampart-drill: \(kind.rawValue) (\(kind.summary)) for \(Int(plan.warmup + plan.attack + plan.cooldown)) s\n".utf8))
            let report = await DrillRunner(plan: plan).run()
            reports.append(report)
            FileHandle.standardError.write(Data((DrillOutput.table([report], label: label).split(separator: "\n").last! + "\n").utf8))
        }
        print(DrillOutput.table(reports, label: label))
        print("")
        print(DrillOutput.classTable(reports, label: label))
        if let json { try DrillOutput.json(reports).write(toFile: json, atomically: true, encoding: .utf8) }
        if let html {
            try DrillOutput.html(reports, title: "Rampart drill: \(label ?? target)").write(toFile: html, atomically: true, encoding: .utf8)
        }
    }
}

struct Origin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the capacity-limited test origin that counts legit and attack requests (by X-Forwarded-For)."
    )

    @Option(name: .long, help: "Listen address (loopback only).") var listen: String = "127.0.0.1:9000"
    @Option(name: .long, help: "Requests served at once.") var concurrency: Int = 4
    @Option(name: .long, help: "Service time per request, milliseconds.") var serviceMs: Int = 20
    @Option(name: .long, help: "Requests that may wait for a free worker; more get 503 at once (default: unbounded).") var queueLimit: Int?
    @Flag(name: .long, help: "Check credentials: wrong logins and unknown API keys answer 401.") var checkCredentials = false

    func run() async throws {
        let address: SocketAddress
        do {
            address = try DrillSafety.loopbackTarget(listen)
        } catch {
            FileHandle.standardError.write(Data("rampart-drill: \(error.description)\n".utf8))
            throw ExitCode(2)
        }
        var config = DemoOrigin.Configuration()
        config.concurrency = concurrency
        config.serviceTime = .milliseconds(Int64(serviceMs))
        config.countedRanges = [DrillSafety.legitRange, DrillSafety.attackRange]
        config.queueLimit = queueLimit.map { max(0, $0) }
        config.checkCredentials = checkCredentials
        let origin = DemoOrigin(configuration: config)
        let port = try await origin.start(host: address.ipAddress ?? "127.0.0.1", port: address.port ?? 9000)
        print("rampart-drill origin on 127.0.0.1:\(port): \(concurrency) at once, \(serviceMs) ms each (capacity \(concurrency * 1000 / max(1, serviceMs)) requests/s)")
        // Runs until interrupted.
        while !Task.isCancelled { try await Task.sleep(nanoseconds: 3_600_000_000_000) }
    }
}
