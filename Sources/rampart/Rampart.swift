import ArgumentParser
import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import RampartCore
import RampartAdmin
import RampartDataPlane
import RampartState
import RampartDemoOrigin
import ServiceLifecycle
import UnixSignals
import RampartFleet

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@main
struct Rampart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rampart",
        abstract: "An HTTP edge gateway that keeps websites up during application-layer DDoS attacks.",
        subcommands: [Run.self, Check.self, Demo.self, Top.self, Ban.self, Rules.self, Mode.self, Incidents.self, Report.self, ReplayCommand.self, Keys.self, Geo.self, Fleet.self]
    )
}

/// Options shared by the commands that start a gateway.
struct LogOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .long, help: "Event loop threads (default: one per CPU core).")
    var threads: Int?

    func makeLogger() throws -> Logger {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "rampart")
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway from a config file, or as a one-site gateway from flags."
    )

    @Option(name: .long, help: "YAML config file.")
    var config: String?

    @Option(name: .long, help: "Listen address for the one-site gateway (host:port).")
    var listen: String?

    @Option(name: .long, help: "Origin address for the one-site gateway (host:port); repeat for several.")
    var origin: [String] = []

    @Option(name: .long, help: "Admin listener address (host:port). Default 127.0.0.1:9090.")
    var admin: String?

    @Option(name: .long, help: "Folder for local state (bans, incidents).")
    var state: String?

    @Option(name: .long, help: "JSON access log: '-' for standard output, or a file (reopened on SIGUSR1).")
    var accessLog: String?

    @Option(name: .long, help: "TLS certificate (PEM) for the listener.")
    var tlsCert: String?

    @Option(name: .long, help: "TLS private key (PEM) for the listener.")
    var tlsKey: String?

    @Option(name: .long, help: "Started as root: switch to this unprivileged user once the ports are bound.")
    var user: String?

    @Flag(name: .long, help: "Binary upgrade: take the listening sockets over from the gateway running with the same --state, which then drains and exits.")
    var takeover = false

    @Option(name: .long, help: "Join a fleet sharing this PostgreSQL database: postgres://USER@HOST:PORT/DB[?sslmode=…&node=NAME] (password: RAMPART_FLEET_PASSWORD).")
    var fleet: String?

    @OptionGroup var log: LogOptions

    func validate() throws {
        if config == nil, listen == nil { throw ValidationError("give --config FILE, or --listen ADDR with --origin ADDR") }
        if config != nil, listen != nil || !origin.isEmpty { throw ValidationError("--config cannot be combined with --listen/--origin") }
        if listen != nil, origin.isEmpty { throw ValidationError("--listen needs at least one --origin") }
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
    }

    func run() async throws {
        let logger = try log.makeLogger()
        if tlsCert != nil, config != nil {
            throw ValidationError("--tls-cert/--tls-key are for one-site mode; with --config use listeners[].tls")
        }
        let source: ConfigSource
        var gatewayConfig: GatewayConfig
        if let path = config {
            source = .file(path)
            do {
                gatewayConfig = try ConfigLoader.load(path: path)
            } catch {
                printErr(error.description)
                throw ExitCode(2)
            }
        } else {
            source = .flags
            guard let l = HostPort(parsing: listen!) else { throw ValidationError("--listen: expected host:port, got '\(listen!)'") }
            var origins: [HostPort] = []
            for o in origin {
                guard let hp = HostPort(parsing: o) else { throw ValidationError("--origin: expected host:port, got '\(o)'") }
                origins.append(hp)
            }
            gatewayConfig = GatewayConfig.oneSite(listen: l, origins: origins)
            if let cert = tlsCert, let key = tlsKey {
                for file in [cert, key] where !FileManager.default.isReadableFile(atPath: file) {
                    throw ValidationError("cannot read '\(file)'")
                }
                gatewayConfig.listeners[0].tls = ListenerTLS(files: CertificateFiles(certificate: cert, key: key))
            }
        }
        if let admin {
            guard let hp = HostPort(parsing: admin) else { throw ValidationError("--admin: expected host:port, got '\(admin)'") }
            gatewayConfig.adminAddress = hp
        }
        if let state { gatewayConfig.statePath = state }
        if let accessLog { gatewayConfig.accessLogPath = accessLog }
        if let fleet {
            switch FleetConfig.fromFlag(fleet) {
            case .success(let f): gatewayConfig.fleet = f
            case .failure(let e): throw ValidationError("--fleet: \(e.message)")
            }
        }
        var drop: PrivilegeDrop?
        if let user {
            do { drop = try PrivilegeDrop(user: user) } catch {
                printErr("\(error)")
                throw ExitCode(2)
            }
        }
        try await serve(gatewayConfig, source: source, logger: logger, threads: log.threads, user: drop, takeover: takeover)
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a config file: every problem at once, each with file, line and key."
    )

    @Option(name: .long, help: "YAML config file.")
    var config: String

    func run() throws {
        do {
            let checked = try ConfigLoader.check(path: config)
            for warning in checked.warnings { printErr("warning: \(warning)") }
            let c = checked.config
            let warned = checked.warnings.isEmpty ? "" : ", \(checked.warnings.count) warning(s)"
            say("\(config): OK (\(c.listeners.count) listener(s), \(c.sites.count) site(s)\(warned))")
        } catch {
            printErr(error.description)
            printErr("\(config): \(error.issues.count) problem(s)")
            throw ExitCode(1)
        }
    }
}

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start the gateway on its embedded defaults in front of a built-in demo origin."
    )

    @Option(name: .long, help: "Gateway listen address.")
    var listen: String = "127.0.0.1:8080"

    @Option(name: .long, help: "Demo origin listen address.")
    var originListen: String = "127.0.0.1:8081"

    @Option(name: .long, help: "Admin listener (dashboard, API, /metrics).")
    var admin: String = "127.0.0.1:9090"

    @Option(name: .long, help: "Folder for local state (bans, incidents, admin token, signing key).")
    var state: String = "rampart-state"

    @OptionGroup var log: LogOptions

    func run() async throws {
        let logger = try log.makeLogger()
        guard let l = HostPort(parsing: listen) else { throw ValidationError("--listen: expected host:port") }
        guard let o = HostPort(parsing: originListen) else { throw ValidationError("--origin-listen: expected host:port") }
        var originConfig = DemoOrigin.Configuration()
        originConfig.concurrency = 64
        let demoOrigin = DemoOrigin(configuration: originConfig)
        let port = try await demoOrigin.start(host: o.host, port: o.port)
        logger.notice("demo origin listening", metadata: ["address": "\(o.host):\(port)"])
        var config = GatewayConfig.oneSite(listen: l, origins: [HostPort(host: o.host, port: port)])
        guard let a = HostPort(parsing: admin) else { throw ValidationError("--admin: expected host:port") }
        config.adminAddress = a
        config.statePath = state
        try await serve(config, source: .flags, logger: logger, threads: log.threads) {
            say("Rampart demo: open http://\(l)/ (the demo origin is at http://\(o.host):\(port)/)")
        }
        await demoOrigin.stop()
    }
}

enum ConfigSource {
    case file(String)
    case flags
}

/// Writes a line to standard error, unbuffered.
func printErr(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Writes a line to standard output, unbuffered (so scripts reading the pipe see it at once).
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

/// Runs a gateway until SIGTERM/SIGINT (drain, then exit); SIGHUP reloads the config file,
/// SIGUSR1 reopens the access log.
///
/// The long-running parts are services of one swift-service-lifecycle `ServiceGroup`, started
/// together and shut down gracefully in reverse order: the admin listener first, then the signal
/// handler, the gateway's drain (listening sockets closed, requests in flight finished within
/// `timeouts.drain`), detection, health checks, and last the state writer (every queued ban and
/// incident on disk). The event loops stop after the group.
func serve(_ config: GatewayConfig, source: ConfigSource, logger: Logger, threads: Int?, user: PrivilegeDrop? = nil, takeover takeoverRequested: Bool = false, started: () -> Void = {}) async throws {
    if let threads, threads < 1 || threads > 256 { throw ValidationError("--threads must be between 1 and 256") }
    // SIGHUP and SIGUSR1 are caught from the start (their default action ends the process);
    // SIGTERM and SIGINT belong to the service group, which is up before any socket is bound: one
    // that arrives while listeners and the admin API come up is served (drain, exit 0).
    let controlSignals = await UnixSignalsSequence(trapping: .sighup, .sigusr1)
    // The state folder holds bans, incidents and the generated admin token: make sure it is usable
    // before taking traffic rather than failing later.
    do {
        // A new folder is its owner's only: it holds the signing key and the admin token.
        try FileManager.default.createDirectory(atPath: config.statePath, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        guard FileManager.default.isWritableFile(atPath: config.statePath) else {
            throw CocoaError(.fileWriteNoPermission)
        }
    } catch {
        logger.critical("state folder is not usable", metadata: ["path": "\(config.statePath)", "error": "\(error)"])
        throw ExitCode(1)
    }
    var secret: [UInt8]
    let keyExisted = FileManager.default.fileExists(atPath: (config.statePath as NSString).appendingPathComponent(signingKeyFileName))
    do {
        secret = try signingSecret(folder: config.statePath, logger: logger)
    } catch {
        logger.critical("cannot read or create the signing key", metadata: ["path": "\(config.statePath)/signing.key", "error": "\(error)"])
        throw ExitCode(1)
    }
    if let fleet = config.fleet { secret = await fleetSigningSecret(fleet, local: secret, madeNow: !keyExisted, folder: config.statePath, logger: logger) }
    // A binary upgrade: the running gateway writes its bans and passes its listening sockets.
    let takeover: Takeover?
    do {
        takeover = takeoverRequested ? try Takeover.begin(stateFolder: config.statePath, listeners: config.listeners.map(\.address)) : nil
    } catch {
        logger.critical("\(LifecycleError.Part.takeover.rawValue)", metadata: ["error": "\(error)"])
        throw ExitCode(1)
    }
    if let takeover {
        logger.notice("binary upgrade: listening sockets received", metadata: ["previous_pid": "\(takeover.previousPID)"])
    }
    // Bans and incidents live in SQLite in the state folder. A database that cannot be opened is
    // no reason to leave a site unprotected: the gateway runs on without persistence, loudly.
    var store: StateStore?
    do {
        store = try StateStore(folder: config.statePath, logger: logger)
    } catch {
        logger.error("state database unavailable: bans and incidents will not survive a restart", metadata: ["path": "\(config.statePath)/state.sqlite", "error": "\(error)"])
    }
    let gateway: Gateway
    do {
        gateway = try Gateway(config: config, logger: logger, threads: threads ?? System.coreCount, secret: secret, store: store)
    } catch {
        logger.critical("cannot start the gateway", metadata: ["error": "\(error)"])
        takeover?.abort("cannot start the gateway")
        throw ExitCode(1)
    }
    if !config.alertWebhooks.isEmpty {
        let sender = WebhookSender(urls: config.alertWebhooks, logger: logger)
        try await gateway.onAlert { sender.send($0) }
    }
    // The fleet node is made once the listeners are bound (it shows their addresses).
    let fleetNode = NIOLockedValueBox<FleetNode?>(nil)
    let (fleetListening, fleetBound) = AsyncStream.makeStream(of: [SocketAddress].self)
    let admin = try makeAdmin(
        config, source: source, gateway: gateway, logger: logger, signingSecret: secret,
        fleet: config.fleet.map { FleetService.statusJSON(fleetNode, node: $0.node) }
    )
    let startup = StartupBarrier(expecting: admin == nil ? [.listeners] : [.listeners, .admin])
    let listeners = config.listeners
    var beforeAdopting: (@Sendable () throws -> Void)?
    if let takeover { beforeAdopting = { try takeover.adopting() } }
    let gatewayService = GatewayService(gateway: gateway, drainTimeout: config.drainTimeout, logger: logger, adopting: takeover?.descriptors, beforeAdopting: beforeAdopting) { addresses in
        for (listener, address) in zip(listeners, addresses) {
            say("Rampart listening on \(listener.tls == nil ? "http" : "https")://\(HostPort(host: listener.address.host, port: address.port ?? listener.address.port))/")
        }
        if let takeover {
            do {
                try takeover.ready()
            } catch {
                logger.error("binary upgrade: the previous process did not hear that this one serves", metadata: ["error": "\(error)"])
            }
        }
        fleetBound.yield(addresses)
        fleetBound.finish()
        startup.report(.listeners)
    }
    let successor = SuccessorConnection()
    var afterPrevious: (@Sendable () async -> Void)?
    var cancelTakeover: (@Sendable () -> Void)?
    if let takeover {
        cancelTakeover = { takeover.cancel() }
        afterPrevious = {
            await takeover.previousExited()
            let count = await gateway.restoreStoredBans()
            logger.notice("binary upgrade: the previous process has exited; stored bans read again", metadata: ["bans": "\(count)"])
        }
    }
    let handover = HandoverService(
        stateFolder: config.statePath, gateway: gateway, listeners: config.listeners.map(\.address), store: store, logger: logger,
        successor: successor, after: afterPrevious, cancelAfter: cancelTakeover
    )
    // Started in this order; shut down in the reverse one.
    var services: [any Service] = [
        StateWriterService(store: store),
        HealthCheckService(gateway: gateway),
        ModeDetectionService(gateway: gateway),
        gatewayService,
        ControlSignalService(signals: controlSignals, gateway: gateway, source: source, flagsConfig: config, logger: logger),
        handover,
    ]
    if config.fleet != nil {
        services.insert(FleetService(listening: fleetListening, make: { addresses in
            guard let node = try makeFleetNode(config, gateway: gateway, addresses: addresses, logger: logger) else {
                throw LifecycleError(.fleet, FleetConfigError("no fleet configured"))
            }
            return node
        }, current: fleetNode), at: services.firstIndex { $0 is GatewayService }! + 1)
    } else {
        fleetBound.finish()
    }
    if let admin {
        services.append(AdminService(server: admin.server, address: config.adminAddress, token: admin.token, logger: logger, retryFor: takeover == nil ? .zero : .seconds(30)) { _ in
            startup.report(.admin)
        })
    }
    let group = ServiceGroup(configuration: ServiceGroupConfiguration(
        // A service that ends or fails (a port taken at start) shuts the others down gracefully:
        // requests in flight still get their drain.
        services: services.map {
            .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)
        },
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger
    ))
    let failure: (any Error)? = await withTaskGroup(of: (any Error)?.self) { tasks in
        tasks.addTask {
            defer { startup.finish() }
            do {
                try await group.run()
                return nil
            } catch {
                return error
            }
        }
        var failure: (any Error)?
        if await startup.wait() {
            do {
                try dropPrivileges(user, stateFolder: config.statePath, logger: logger)
                started()
            } catch {
                failure = LifecycleError(.privileges, error)
                await group.triggerGracefulShutdown()
            }
        }
        for await result in tasks { failure = failure ?? result }
        return failure
    }
    // Every ban and incident is written (the state writer stopped last): a process that took
    // over from this one may read them now.
    successor.close()
    await gateway.stopEventLoops()
    if let failure {
        if let failure = failure as? LifecycleError {
            var metadata: Logger.Metadata = ["error": "\(failure.underlying)"]
            if let subject = failure.subject { metadata["subject"] = "\(subject)" }
            logger.critical("\(failure.part.rawValue)", metadata: metadata)
        } else {
            logger.critical("the gateway stopped on an error", metadata: ["error": "\(failure)"])
        }
        throw ExitCode(1)
    }
}

/// The admin server and its token, or nil when the admin listener is turned off. A token that
/// can be neither read nor made is an error (exit 1).
func makeAdmin(_ config: GatewayConfig, source: ConfigSource, gateway: Gateway, logger: Logger, signingSecret: [UInt8], fleet: (@Sendable () -> [UInt8])? = nil) throws -> (server: AdminServer, token: AdminToken)? {
    guard config.adminEnabled else { return nil }
    let token: AdminToken
    do {
        token = try AdminToken.resolve(configured: config.adminToken, stateFolder: config.statePath)
    } catch {
        logger.critical("cannot read or create the admin token", metadata: ["path": "\(config.statePath)/\(AdminToken.fileName)", "error": "\(error)"])
        throw ExitCode(1)
    }
    if case .stateFile(let path) = token.source { restrictSecretFile(path, logger: logger) }
    var reload: (@Sendable () async throws -> Void)? = nil
    if case .file(let path) = source {
        reload = {
            let newConfig = try ConfigLoader.load(path: path)
            try await gateway.reload(newConfig)
        }
    }
    return (AdminServer(gateway: gateway, token: token.value, logger: logger, reload: reload, signingSecret: signingSecret, fleet: fleet), token)
}

/// Makes a secret file found with group or other access readable by its owner only, and says so.
func restrictSecretFile(_ path: String, logger: Logger) {
    do {
        if try SecretFile.restrictToOwner(path) {
            logger.warning("a secret file was readable by other users; it is now readable by its owner only (mode 0600)", metadata: ["path": "\(path)"])
        }
    } catch {
        logger.warning("a secret file is readable by other users and its mode cannot be changed", metadata: ["path": "\(path)", "error": "\(error)"])
    }
}

/// The signing key's file name inside the state folder.
let signingKeyFileName = "signing.key"

/// The secret that signs clearance cookies: `signing.key` in the state folder, made (32 random
/// bytes, mode 0600) on first start. Keeping it across restarts keeps visitors' clearances valid;
/// nodes that share it accept each other's clearances. It is read at start only: a new key
/// (`rampart keys rotate`) takes effect at the next start, not on SIGHUP.
func signingSecret(folder: String, logger: Logger) throws -> [UInt8] {
    let path = (folder as NSString).appendingPathComponent(signingKeyFileName)
    if let data = FileManager.default.contents(atPath: path) {
        guard data.count >= 16 else { throw ValidationError("\(path): a signing key needs at least 16 bytes; delete the file to make a new one") }
        restrictSecretFile(path, logger: logger)
        return Array(data)
    }
    let bytes = SecretFile.randomBytes(32)
    try SecretFile.replace(at: path, with: bytes)
    return bytes
}
