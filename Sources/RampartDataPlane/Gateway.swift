import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import NIOSSL
import RampartCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The running data plane: listeners, per-loop contexts, health checks; reload and drain.
///
/// Hot-path state lives in one ``LoopContext`` per event loop. The few cross-loop operations
/// (reload, stats, drain) go through `submit` on each loop; the lock below guards only this
/// control-plane object's own fields and is never taken per request.
public final class Gateway: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let ownsGroup: Bool
    let acceptLoop: any EventLoop
    let contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>]
    let logger: Logger
    private static let keptQuiescingHelpers = NIOLockedValueBox<[ServerQuiescingHelper]>([])
    /// One quiescing helper per listener (a helper tracks the children of one server channel).
    let quiesce: NIOLockedValueBox<[ServerQuiescingHelper]>
    let state: NIOLockedValueBox<ControlState>
    let checker: NIOLoopBound<HealthChecker>
    let bans: NIOLoopBound<BanRegistry>
    let detection: NIOLoopBound<DetectionService>
    /// Runtime rules and what a fleet shares beyond bans and modes (`Gateway+SharedState.swift`).
    let shared: NIOLockedValueBox<SharedState>
    /// The state database (nil: none); reports read older incidents' full records from it.
    private let store: (any GatewayStore)?
    /// How the state store's writes go (disk full, read-only, locked). A gateway started without
    /// a store (its database could not be opened) reports it as not writable; nil for a store that
    /// cannot tell.
    public var storeHealth: StoreHealth? {
        guard let store else { return StoreHealth(writable: false, lastError: "the state database could not be opened at start") }
        return (store as? any StoreHealthReporting)?.health
    }
    private let accessLogSink: AccessLogSink?
    /// Bans pushed into nftables (`bans.kernel: nftables`); nil when off or nftables is missing.
    let kernelBans: KernelBanSink?
    /// The geolocation databases, shared by every loop's ``GeoFilter``.
    private let geo: NIOLockedValueBox<GeoResolver?>

    struct ControlState {
        var config: RuntimeConfig
        var channels: [any Channel] = []
        var gates: [NIOLoopBound<AcceptGate>] = []
        /// The listening sockets' descriptors, in config order (a binary upgrade hands them over).
        var listeningDescriptors: [CInt] = []
        var generation = 1
    }

    /// Builds a gateway for `config` on `threads` event loops (default: one per core).
    /// `secret` signs clearance cookies and challenges (at least 16 bytes; nodes that share it
    /// accept each other's clearances); a random one is used when none is given.
    public init(
        config: GatewayConfig, logger: Logger, threads: Int = System.coreCount,
        secret: [UInt8] = (0..<32).map { _ in UInt8.random(in: 0...255) },
        store: (any GatewayStore)? = nil
    ) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        self.group = group
        self.ownsGroup = true
        self.logger = logger
        self.acceptLoop = group.next()
        let runtime = try RuntimeConfig(config, generation: 1)
        Self.warnAboutUnverifiedOrigins(config, logger: logger)
        let tlsContexts = try Self.tlsContexts(config)
        let sink = try config.accessLogPath.map { try AccessLogSink(path: $0) }
        self.accessLogSink = sink
        let resolver = try config.effectiveGeoIP.map { g throws(GeoDataError) in try GeoResolver.load(g) }
        self.geo = NIOLockedValueBox(resolver)
        self.kernelBans = config.kernelBans.kind == .nftables
            ? KernelBanSink(config: config.kernelBans, capacity: max(config.bans.capacity, 1024), logger: logger) : nil
        var contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>] = [:]
        let loops = Array(group.makeIterator())
        for loop in loops {
            let count = loops.count
            contexts[ObjectIdentifier(loop)] = try loop.submit {
                {
                    let ctx = LoopContext(eventLoop: loop, loopCount: count, config: runtime, logger: logger, secret: secret, tls: tlsContexts)
                    if let sink { ctx.accessLog = AccessLog(sink: sink, perSecond: config.accessLogPerSecond, eventLoop: loop) }
                    Self.installGeo(resolver, config: config, on: ctx)
                    return NIOLoopBound(ctx, eventLoop: loop)
                }()
            }.wait()
        }
        self.contexts = contexts
        self.quiesce = NIOLockedValueBox([])
        self.state = NIOLockedValueBox(ControlState(config: runtime))
        let acceptLoop = self.acceptLoop
        let acceptContext = contexts[ObjectIdentifier(acceptLoop)]!
        let bans = try acceptLoop.submit {
            NIOLoopBound(BanRegistry(policy: config.bans, loop: acceptContext.value, store: store), eventLoop: acceptLoop)
        }.wait()
        self.bans = bans
        let ledger = ChallengeLedger()
        let everyContext = Array(contexts.values)
        let shared = NIOLockedValueBox(SharedState())
        self.shared = shared
        for bound in contexts.values {
            try bound.eventLoop.submit {
                bound.value.reportBan = { ip, reason in
                    bans.eventLoop.execute { bans.value.ban(ip, reason: reason) }
                }
                bound.value.ledger = ledger
                let own = bound.eventLoop
                bound.value.revokeEverywhere = { site, key in
                    for other in everyContext where other.eventLoop !== own {
                        other.eventLoop.execute { other.value.revoke(site: site, key: key) }
                    }
                    bound.value.reportRevocation(site: site, key: key, to: shared)
                }
            }.wait()
        }
        self.store = store
        let allContexts = Array(contexts.values)
        let detectionService = try acceptLoop.submit {
            NIOLoopBound(DetectionService(loop: acceptLoop, contexts: allContexts, logger: logger, store: store), eventLoop: acceptLoop)
        }.wait()
        self.detection = detectionService
        try acceptLoop.submit {
            bans.value.onAutomaticBan = { ip, reason, seconds in
                detectionService.value.note(site: nil, IncidentEvent(
                    time: unixNow(), kind: .ban, text: "source banned for \(seconds) s: \(reason)", address: ip.description
                ))
            }
        }.wait()
        let publishTo = contexts
        self.checker = try acceptLoop.submit {
            NIOLoopBound(
                HealthChecker(loop: acceptLoop, logger: logger) { site, origin, up in
                    for bound in publishTo.values {
                        bound.eventLoop.execute { bound.value.setOriginUp(site: site, origin: origin, up: up) }
                    }
                },
                eventLoop: acceptLoop
            )
        }.wait()
        restoreStoredRules()
    }

    /// The runtime rules the state store kept (``restoreStoredRules()``).
    func storedRulesFromStore() throws -> [OperatorRule] { try store?.storedRules() ?? [] }

    /// Stores the runtime rules (the whole set), when there is a store.
    func storeRules(_ rules: [OperatorRule]) { store?.saveRules(rules) }

    private func context(for loop: any EventLoop) -> LoopContext {
        contexts[ObjectIdentifier(loop)]!.value
    }

    /// Binds every listener and starts health checks and detection. Returns the bound addresses,
    /// in config order (useful with port 0).
    @discardableResult
    public func start() async throws -> [SocketAddress] {
        let bound = try await bind()
        await startHealthChecks()
        await startDetection()
        return bound
    }

    /// The configuration in force (health checks and detection start from it).
    var runtimeConfig: RuntimeConfig { state.withLockedValue { $0.config } }

    /// Binds every listener (health checks and detection are started on their own, see
    /// `Gateway+Lifecycle.swift`). Returns the bound addresses, in config order. `adopting` gives
    /// listening sockets handed over by the process this one replaces, one per listener in config
    /// order: they are served as they are, with the connections waiting in their accept queues.
    @discardableResult
    public func bind(adopting handedOver: [CInt]? = nil) async throws -> [SocketAddress] {
        let config = state.withLockedValue { $0.config }
        if let handedOver, handedOver.count != config.source.listeners.count {
            throw ReloadError(message: "\(handedOver.count) listening socket(s) handed over for \(config.source.listeners.count) listener(s)")
        }
        var bound: [SocketAddress] = []
        for (index, listener) in config.source.listeners.enumerated() {
            let acceptLoop = self.acceptLoop
            let acceptContext = contexts[ObjectIdentifier(acceptLoop)]!
            let bans = self.bans
            let gate = try await acceptLoop.submit {
                NIOLoopBound(
                    AcceptGate(limits: listener.limits, proxyProtocol: listener.proxyProtocol, loop: acceptContext.value, bans: bans.value, listener: index),
                    eventLoop: acceptLoop
                )
            }.get()
            let quiesce = ServerQuiescingHelper(group: group)
            self.quiesce.withLockedValue { $0.append(quiesce) }
            // ServerQuiescingHelper's deinit completes a promise on an event loop; released after the
            // loops stopped, it makes NIO complain. One small object per listener is kept for the
            // life of the process instead.
            Gateway.keptQuiescingHelpers.withLockedValue { $0.append(quiesce) }
            let contexts = self.contexts
            let proxyProtocol = listener.proxyProtocol
            let bootstrap = ServerBootstrap(group: acceptLoop, childGroup: group)
                .serverChannelOption(.backlog, value: 4096)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(gate.value)
                        try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                    }
                }
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let bound = contexts[ObjectIdentifier(channel.eventLoop)]!
                        let ctx = bound.value
                        if index < ctx.tlsContexts.count, let tls = ctx.tlsContexts[index] {
                            try Gateway.configureTLSPipeline(
                                channel: channel, context: bound, listener: index, tls: tls, proxyProtocol: proxyProtocol, gate: gate
                            )
                            return
                        }
                        try Gateway.configureClientPipeline(
                            channel: channel,
                            context: ctx,
                            listener: index,
                            proxyProtocol: proxyProtocol,
                            gate: gate
                        )
                    }
                }
            let descriptor = try handedOver?[index] ?? ListeningSocket.bind(listener.address)
            let channel: any Channel
            do {
                channel = try await bootstrap.withBoundSocket(descriptor).get()
            } catch {
                if handedOver == nil { close(descriptor) }
                throw error
            }
            ListeningSocket.widenBacklog(descriptor)
            state.withLockedValue {
                $0.channels.append(channel)
                $0.gates.append(gate)
                $0.listeningDescriptors.append(descriptor)
            }
            if let address = channel.localAddress { bound.append(address) }
            logger.notice("listening", metadata: ["address": "\(listener.address)", "proxy_protocol": "\(listener.proxyProtocol)"])
        }
        if let kernelBans { await startKernelBans(kernelBans, ports: bound.compactMap(\.port)) }
        return bound
    }

    static func configureClientPipeline(
        channel: any Channel,
        context: LoopContext,
        listener: Int,
        proxyProtocol: Bool,
        gate: NIOLoopBound<AcceptGate>
    ) throws {
        let peer = IPAddress(channel.remoteAddress) ?? IPAddress(v4: 0)
        try configureHTTP1(channel: channel, context: context, listener: listener, peer: peer, scheme: "http") { client in
            if proxyProtocol {
                try channel.pipeline.syncOperations.addHandler(ProxyProtocolHandler(loop: context, gate: gate) { client.peer = $0 })
            }
        }
    }

    /// The HTTP/1.1 pipeline: activity tracking, the decoder with the listener's header limits,
    /// the encoder, and the client handler. `before` adds handlers in front (the PROXY handler).
    static func configureHTTP1(
        channel: any Channel,
        context: LoopContext,
        listener: Int,
        peer: IPAddress,
        scheme: String,
        fingerprint: String? = nil,
        before: (ClientHandler) throws -> Void = { _ in }
    ) throws {
        let limits = context.config.source.listeners[listener].limits
        let client = ClientHandler(loop: context, listener: listener, peer: peer, scheme: scheme, fingerprint: fingerprint, now: channel.eventLoop.now)
        let sync = channel.pipeline.syncOperations
        try before(client)
        try sync.addHandler(ClientActivityHandler(client: client))
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldCount = limits.maxHeaderCount
        try sync.configureHTTPServerPipeline(
            withPipeliningAssistance: false,
            withErrorHandling: false,
            withOutboundHeaderValidation: false,
            withEncoderConfiguration: .init(),
            withDecoderLimitConfiguration: decoderLimits
        )
        try sync.addHandler(client)
    }

    /// Swaps in a new config on every loop. New connections and requests use it; requests in
    /// flight finish on the connections they have. Listener addresses cannot change without a
    /// restart: such a config is refused and the old one kept.
    public func reload(_ config: GatewayConfig) async throws {
        let (old, generation) = state.withLockedValue { s -> (GatewayConfig, Int) in
            (s.config.source, s.generation + 1)
        }
        guard old.listeners.map(\.address) == config.listeners.map(\.address),
            old.listeners.map(\.proxyProtocol) == config.listeners.map(\.proxyProtocol)
        else {
            throw ReloadError(message: "listener addresses or proxy_protocol changed; restart Rampart to apply listener changes")
        }
        let runtime: RuntimeConfig
        do {
            runtime = try RuntimeConfig(config, generation: generation)
        } catch {
            throw ReloadError(message: "\(error)")
        }
        Self.warnAboutUnverifiedOrigins(config, logger: logger)
        if config.kernelBans != old.kernelBans {
            logger.warning("bans.kernel settings changed; they take effect at the next restart")
        }
        // Certificate files are read again: a renewed certificate takes effect for new connections.
        let tlsContexts: [NIOSSLContext?]
        do {
            tlsContexts = try Self.tlsContexts(config)
        } catch {
            throw ReloadError(message: "cannot load a TLS certificate or key: \(error)")
        }
        let resolver: GeoResolver?
        do {
            resolver = try config.effectiveGeoIP.map { g throws(GeoDataError) in try GeoResolver.load(g) }
        } catch {
            throw ReloadError(message: "\(error)")
        }
        geo.withLockedValue { $0 = resolver }
        for bound in contexts.values {
            try await bound.eventLoop.submit {
                bound.value.apply(runtime, tls: tlsContexts)
                Self.installGeo(resolver, config: config, on: bound.value)
            }.get()
        }
        let gates = state.withLockedValue { s -> [NIOLoopBound<AcceptGate>] in
            s.config = runtime
            s.generation = generation
            return s.gates
        }
        for (gate, listener) in zip(gates, config.listeners) {
            try await gate.eventLoop.submit { gate.value.update(limits: listener.limits) }.get()
        }
        let checker = self.checker
        let detection = self.detection
        try await acceptLoop.submit {
            checker.value.start(runtime)
            detection.value.start(config)
        }.get()
        let bans = self.bans
        try await acceptLoop.submit { bans.value.list.policy = config.bans }.get()
        logger.notice("configuration reloaded", metadata: ["generation": "\(generation)"])
    }

    /// The listening sockets' descriptors in config order, while the listeners are open: what a
    /// binary upgrade hands to the new process.
    public var listeningDescriptors: [CInt] { state.withLockedValue { $0.listeningDescriptors } }

    /// Decision counters summed over every event loop.
    public func stats() async throws -> GatewayStats {
        var total = LoopCounters()
        for bound in contexts.values {
            let c = try await bound.eventLoop.submit { bound.value.counters }.get()
            total.add(c)
        }
        var rejections: [RejectReason: Int] = [:]
        for (i, reason) in RejectReason.allCases.enumerated() where total.rejections[i] > 0 {
            rejections[reason] = total.rejections[i]
        }
        return GatewayStats(
            connectionsAccepted: total.connectionsAccepted,
            requests: total.requests,
            proxied: total.proxied,
            shadowLimited: total.shadowLimited,
            cacheHits: total.cacheHits,
            cacheStale: total.cacheStale,
            bansIssued: total.bansIssued,
            challengesIssued: total.challengesIssued,
            clearancesIssued: total.clearancesIssued,
            clearedRequests: total.clearedRequests,
            challengeFailures: total.challengeFailures,
            latencyBounds: LoopCounters.latencyBounds,
            latencyBuckets: total.latencyBuckets,
            latencySumSeconds: Double(total.latencySumMicros) / 1e6,
            latencyCount: total.latencyCount,
            rejections: rejections,
            kernelBans: kernelBans?.stats
        )
    }

    /// Stops accepting, lets in-flight requests finish (up to `timeout`), then closes the rest and
    /// stops the event loops.
    public func shutdown(timeout: TimeAmount) async {
        await stopHealthChecks()
        await stopDetection()
        await drain(timeout: timeout)
        await stopEventLoops()
    }

    /// Closes the listening sockets (new connections are refused from here on), lets in-flight
    /// requests finish (up to `timeout`), then closes what is left. Returns true when every
    /// connection finished by itself. The event loops keep running (``stopEventLoops()``).
    @discardableResult
    public func drain(timeout: TimeAmount) async -> Bool {
        var finished = false
        for bound in contexts.values {
            try? await bound.eventLoop.submit { bound.value.draining = true }.get()
        }
        await pauseAccepting()
        let promise = acceptLoop.makePromise(of: Void.self)
        let helpers = quiesce.withLockedValue { $0 }
        let drained = helpers.map { helper -> EventLoopFuture<Void> in
            let p = acceptLoop.makePromise(of: Void.self)
            helper.initiateShutdown(promise: p)
            return p.futureResult
        }
        EventLoopFuture.andAllComplete(drained, on: acceptLoop).cascade(to: promise)
        let timer = acceptLoop.scheduleTask(in: timeout) { promise.fail(DrainTimeout()) }
        do {
            try await promise.futureResult.get()
            timer.cancel()
            finished = true
            logger.notice("drained: every connection finished")
        } catch {
            logger.warning("drain timeout reached; closing remaining connections")
            for bound in contexts.values {
                try? await bound.eventLoop.submit { bound.value.cutting = true }.get()
            }
        }
        for bound in contexts.values {
            try? await bound.eventLoop.submit {
                for site in bound.value.sites { for pool in site.pools { pool.closeIdle() } }
            }.get()
        }
        let gates = state.withLockedValue { $0.gates }
        for gate in gates {
            try? await gate.eventLoop.submit { gate.value.stopping.store(true, ordering: .relaxed) }.get()
        }
        for bound in contexts.values {
            try? await bound.eventLoop.submit { bound.value.accessLog?.flush() }.get()
        }
        accessLogSink?.flush()
        if let kernelBans {
            let bans = self.bans
            try? await acceptLoop.submit { bans.value.kernel = nil }.get()
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in kernelBans.stop { done.resume() } }
        }
        return finished
    }

    /// Stops the event loops: the last step of a shutdown, after ``drain(timeout:)``.
    public func stopEventLoops() async {
        if ownsGroup { try? await group.shutdownGracefully() }
    }

    /// Calls `handler` (off the event loops' request path) for mode changes and incidents.
    public func onAlert(_ handler: @escaping @Sendable (AlertEvent) -> Void) async throws {
        let detection = self.detection
        try await acceptLoop.submit { detection.value.alert = handler }.get()
    }

    /// Reopens the access log file (SIGUSR1, after logrotate moved it).
    public func reopenLogs() { accessLogSink?.reopen() }

    /// Origins reached over TLS without checking their certificate (`verify: false`) are named in
    /// the log at every load: anyone on the path to them can read and change the traffic.
    static func warnAboutUnverifiedOrigins(_ config: GatewayConfig, logger: Logger) {
        for site in config.sites {
            for origin in site.origins where origin.tls?.verify == false {
                logger.warning(
                    "origin certificate is not verified (tls.verify: false); use only for tests",
                    metadata: ["site": "\(site.name)", "origin": "\(origin.address)"]
                )
            }
        }
    }

    /// One TLS context per listener (nil for plain HTTP ones).
    static func tlsContexts(_ config: GatewayConfig) throws -> [NIOSSLContext?] {
        try config.listeners.map { listener in
            try listener.tls.map { try TLSSetup.context($0, sites: config.sites, defaultSite: config.defaultSite) }
        }
    }

    /// Every site's mode and last second of traffic.
    public func siteStatus() async throws -> [SiteStatus] {
        let detection = self.detection
        return try await acceptLoop.submit { detection.value.status() }.get()
    }

    /// Forces `site` into `mode` until cleared with nil. False when there is no such site.
    public func setMode(site: String, mode: SiteMode?) async throws -> Bool {
        let detection = self.detection
        return try await acceptLoop.submit {
            let set = detection.value.setOverride(site: site, mode: mode)
            if set { detection.value.onOperatorMode?(site, mode) }
            return set
        }.get()
    }

    /// The last second's top sources, subnets, paths and agents per site.
    public func top(_ n: Int = 10) async throws -> [SiteTop] {
        let detection = self.detection
        return try await acceptLoop.submit { detection.value.top(n) }.get()
    }

    /// A ban in force.
    public struct Ban: Sendable, Equatable, Codable {
        public var address: String
        /// Seconds left.
        public var remaining: Int
        public var reason: String
        /// How many times this source was banned before (each repeat doubles the length).
        public var repeats: Int
    }

    /// Bans in force, longest remaining first.
    public func bans() async throws -> [Ban] {
        let bans = self.bans
        return try await acceptLoop.submit {
            let registry = bans.value
            let now = Int64(bans.eventLoop.now.uptimeNanoseconds)
            return registry.list.active(now: now)
                .map { Ban(address: $0.source.description, remaining: Int(($0.until - now) / 1_000_000_000), reason: registry.reasons[$0.source] ?? "", repeats: $0.level) }
                .sorted { $0.remaining > $1.remaining }
        }.get()
    }

    /// Bans `address` for `length` (refused at accept from now on).
    public func ban(_ address: IPAddress, length: TimeAmount, reason: String) async throws {
        let bans = self.bans
        let detection = self.detection
        try await acceptLoop.submit {
            bans.value.ban(address, length: length, reason: reason)
            detection.value.note(site: nil, IncidentEvent(
                time: unixNow(), kind: .operatorBan,
                text: "an operator banned the address for \(length.nanoseconds / 1_000_000_000) s (admin API): \(reason)", address: address.description
            ))
        }.get()
    }

    /// Lifts a ban; false when none was in force.
    public func unban(_ address: IPAddress) async throws -> Bool {
        let bans = self.bans
        let detection = self.detection
        return try await acceptLoop.submit {
            let lifted = bans.value.unban(address)
            if lifted {
                detection.value.note(site: nil, IncidentEvent(
                    time: unixNow(), kind: .operatorUnban, text: "an operator lifted the ban on the address (admin API)", address: address.description
                ))
            }
            return lifted
        }.get()
    }

    /// Incident `id` in full (with its series and events): from memory, or for an older one whose
    /// details memory no longer holds, from the state database. Nil when there is no such incident.
    public func incident(id: Int) async throws -> Incident? {
        guard let found = try await incidents().first(where: { $0.id == id }) else { return nil }
        guard found.series == nil, found.events == nil, let store else { return found }
        return withFleet((try? store.incident(id: id)).map { [$0] } ?? [found]).first ?? found
    }

    /// Incidents kept in memory: closed ones, then open ones.
    public func incidents() async throws -> [Incident] {
        let detection = self.detection
        return withFleet(try await acceptLoop.submit { detection.value.allIncidents() }.get())
    }

    /// The config in force.
    public var currentConfig: GatewayConfig { state.withLockedValue { $0.config.source } }
}

/// A reload that was refused; the old config stays in force.
public struct ReloadError: Error, CustomStringConvertible {
    /// Why.
    public var message: String
    public var description: String { message }
}

private struct DrainTimeout: Error {}
