import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import PostgresNIO
import RampartCore
import RampartDataPlane

/// How this node stands with the fleet, for /metrics, the admin API and the dashboard.
public struct FleetStatus: Sendable, Equatable, Codable {
    /// Always true (a node outside any fleet answers `{"enabled": false}`).
    public var enabled = true
    /// This node's name.
    public var node: String
    /// The database, without any password.
    public var database: String
    /// True while the node has a working connection to PostgreSQL.
    public var connected: Bool
    /// Seconds since the node last read the fleet's events (0 until its first read).
    public var syncLagSeconds: Double
    /// Decisions waiting in the local outbox.
    public var outbox: Int
    /// Decisions dropped from a full outbox since start.
    public var outboxDropped: Int
    /// The last shared event applied here.
    public var lastEvent: Int64
    /// Every node as of the last heartbeat read (empty until connected once).
    public var nodes: [FleetNodeRow]
    /// Why the last connection attempt failed, when it did (no secrets: PostgreSQL's message).
    public var lastError: String?
}

/// One node of a fleet (docs/fleet.md): shares this gateway's bans and unbans through PostgreSQL
/// and applies everyone else's.
///
/// Every decision made here goes to the local outbox (SQLite) first, then to the database; the
/// node follows the append-only `rampart_events` table, woken by `LISTEN rampart_events` (the
/// NOTIFY carries only the new id) and by a poll every `poll_interval` as a safety net; at each
/// (re)connection it reads the merged state in full. While PostgreSQL is unreachable the gateway
/// keeps serving on its last state and local detection (fail-open), the outbox fills, and it is
/// replayed when the database is back. Nothing here runs on an event loop; the gateway's ban list
/// is reached through the accept loop, as local bans are.
public final class FleetNode: Sendable {
    /// The fleet's settings (`fleet:` or `--fleet`).
    public let config: FleetConfig
    let gateway: Gateway
    let logger: Logger
    private let outbox: FleetOutbox
    /// This node's listener addresses, shown to operators.
    private let address: String
    private let started: Int64
    let state: NIOLockedValueBox<Shared>
    private let intake: AsyncStream<(SharedDecision, Int64)>
    private let intakeSink: AsyncStream<(SharedDecision, Int64)>.Continuation
    /// Told when the fleet becomes unreachable (false) and reachable again (true), after the
    /// first connection.
    private let onConnectivity: @Sendable (Bool) -> Void

    struct Shared {
        var status: FleetStatus
        /// Wakes the current session's cycle (nil while disconnected).
        var wake: AsyncStream<Void>.Continuation?
        var cursor = EventCursor()
        /// Monotonic seconds of the last completed read of the events (nil: never).
        var lastSync: Double?
        /// This node's last second of traffic per site (sliding), and when it was taken
        /// (monotonic seconds).
        var window: (at: Double, seconds: [String: TrafficSecond])?
        /// What this node's detection raised, and when to write it.
        var raised = RaisedModeRenewal()
        /// Every node's last second per site (this one's too), as last published.
        var rates: [String: [FleetSiteRates]] = [:]
        /// True once the loss of the database was announced (log, webhook) and not yet its return.
        var announcedDown = false
        /// This node's own figures of its incidents, for the fleet's incidents.
        var incidents = IncidentTallies()
    }

    /// A node for `gateway`, its outbox in `stateFolder`. `onConnectivity` hears about losing and
    /// regaining the database (the webhook).
    public init(config: FleetConfig, gateway: Gateway, stateFolder: String, address: String, logger: Logger, onConnectivity: @escaping @Sendable (Bool) -> Void = { _ in }) throws {
        self.config = config
        self.gateway = gateway
        var logger = logger
        logger[metadataKey: "fleet"] = "\(config.node)"
        self.logger = logger
        self.outbox = try FleetOutbox(path: (stateFolder as NSString).appendingPathComponent("fleet-outbox.sqlite"), capacity: config.outboxCapacity)
        self.address = address
        self.started = Int64(Date().timeIntervalSince1970)
        self.onConnectivity = onConnectivity
        let waiting = (try? outbox.count()) ?? 0
        self.state = NIOLockedValueBox(Shared(status: FleetStatus(
            node: config.node, database: config.description, connected: false, syncLagSeconds: 0, outbox: waiting,
            outboxDropped: 0, lastEvent: 0, nodes: [], lastError: nil
        )))
        (intake, intakeSink) = AsyncStream.makeStream(of: (SharedDecision, Int64).self, bufferingPolicy: .bufferingOldest(max(16, config.outboxCapacity)))
    }

    /// The node's standing now, every node with its last second per site.
    public var status: FleetStatus {
        state.withLockedValue { s in
            var status = s.status
            for i in status.nodes.indices { status.nodes[i].sites = s.rates[status.nodes[i].name] ?? [] }
            return status
        }
    }

    /// Runs until the task is cancelled: takes this node's decisions into the outbox and keeps a
    /// connection to the fleet, reconnecting with a short backoff.
    public func run() async {
        let sink = intakeSink
        do {
            try await gateway.onBanDecision { decision in sink.yield((decision, Int64(Date().timeIntervalSince1970))) }
            try await gateway.onModeDecision { decision in sink.yield((decision, Int64(Date().timeIntervalSince1970))) }
            let state = self.state
            try await gateway.onTrafficWindow(perSecond: Int((1 / config.trafficInterval).rounded())) { window in
                let now = Self.monotonic()
                // The cycle runs at once: the summary goes out within milliseconds of the slice.
                let unix = Int64(Date().timeIntervalSince1970)
                state.withLockedValue {
                    $0.window = (now, window)
                    // Incidents count whole seconds: the window taken on a second's edge is that second.
                    if unix > $0.incidents.lastSecond { $0.incidents.add(window.mapValues(IncidentCounts.init), at: unix) }
                    $0.wake?.yield()
                }
            }
            try await gateway.onAutomaticMode { site, mode, tier, reason in
                state.withLockedValue {
                    $0.raised.set(site: site, mode: mode, tier: tier, reason: reason)
                    $0.wake?.yield()
                }
            }
            followSharedExtras(sink)
        } catch {
            logger.error("cannot follow the gateway's bans and modes; this node's decisions stay local", metadata: ["error": "\(error)"])
        }
        publishGauges()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.takeDecisions() }
            group.addTask { await self.reportEverySecond() }
            group.addTask { await self.stayConnected() }
            await group.next()
            group.cancelAll()
        }
        intakeSink.finish()
    }

    // MARK: - Decisions into the outbox

    private func takeDecisions() async {
        for await (decision, decided) in intake {
            do {
                let dropped = try outbox.append(decision, decided: decided)
                let count = try outbox.count()
                state.withLockedValue {
                    $0.status.outbox = count
                    $0.status.outboxDropped += dropped
                    $0.wake?.yield()
                }
                publishGauges()
                if dropped > 0 { logger.warning("fleet outbox full: oldest decisions dropped", metadata: ["dropped": "\(dropped)"]) }
            } catch {
                logger.error("cannot write the fleet outbox; the decision stays on this node only", metadata: ["error": "\(error)"])
            }
            if Task.isCancelled { return }
        }
    }

    // MARK: - Gauges

    private func reportEverySecond() async {
        while !Task.isCancelled {
            publishGauges()
            try? await Task.sleep(nanoseconds: 1_000_000_000)
        }
    }

    private func publishGauges() {
        let now = Self.monotonic()
        let s = state.withLockedValue { shared -> FleetStatus in
            shared.status.syncLagSeconds = shared.lastSync.map { max(0, now - $0) } ?? 0
            return shared.status
        }
        // Made at each report, not at init: the node is built before the admin listener points
        // swift-metrics at its registry, and a handle made before that would stay a no-op.
        Gauge(label: "rampart_fleet_connected").record(s.connected ? 1 : 0)
        Gauge(label: "rampart_fleet_sync_lag_seconds").record(s.syncLagSeconds)
        Gauge(label: "rampart_fleet_outbox_size").record(s.outbox)
        Gauge(label: "rampart_fleet_outbox_dropped").record(s.outboxDropped)
    }

    static func monotonic() -> Double {
        Double(DispatchTime.now().uptimeNanoseconds) / 1e9
    }

    // MARK: - The connection

    private func stayConnected() async {
        var backoff = 0.25
        var attempt = 0
        var quiet = logger
        quiet.logLevel = .critical
        while !Task.isCancelled {
            attempt += 1
            do {
                let configuration = try Self.connectionConfiguration(config)
                let connection = try await PostgresConnection.connect(configuration: configuration, id: attempt, logger: quiet)
                backoff = 0.25
                do {
                    try await session(FleetDatabase(connection: connection, logger: quiet))
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            } catch {
                if Task.isCancelled { break }
                disconnected(error)
            }
            try? await Task.sleep(nanoseconds: UInt64(backoff * 1e9))
            backoff = min(backoff * 2, 2)
        }
        state.withLockedValue { $0.wake = nil }
    }

    private func disconnected(_ error: any Error) {
        let text = Self.describe(error)
        let announce = state.withLockedValue { s -> Bool in
            s.status.connected = false
            s.status.lastError = text
            s.wake = nil
            defer { s.announcedDown = true }
            return !s.announcedDown
        }
        publishGauges()
        if announce {
            logger.error("fleet database unreachable: serving on the last shared state, own decisions queue in the outbox", metadata: ["error": "\(text)"])
            onConnectivity(false)
        }
    }

    /// PostgreSQL's own message when there is one (it never holds the password).
    static func describe(_ error: any Error) -> String {
        if let e = error as? PSQLError {
            if let message = e.serverInfo?[.message] { return message }
            return "\(e.code)"
        }
        return "\(error)"
    }

    private struct Disconnected: Error, CustomStringConvertible {
        var description: String { "the connection closed" }
    }

    private struct Timeout: Error, CustomStringConvertible {
        var description: String { "the database did not answer within 5 s" }
    }

    /// One connected stretch: migrate, read the whole state, then follow events until an error.
    private func session(_ db: FleetDatabase) async throws {
        try await FleetSchema.migrate(db.connection, logger: logger)
        try await resynchronise(db)
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let wasDown = state.withLockedValue { s -> Bool in
            s.status.connected = true
            s.status.lastError = nil
            s.wake = wake
            defer { s.announcedDown = false }
            return s.announcedDown
        }
        logger.notice("joined the fleet", metadata: ["database": "\(config.description)"])
        if wasDown { onConnectivity(true) }
        publishGauges()
        wake.yield()
        // The safety poll doubles as the clock of the heartbeat (every second) and of the traffic
        // summaries (every `traffic_interval`).
        let poll = UInt64(min(config.pollInterval, 1, config.trafficInterval) * 1e9)
        state.withLockedValue { $0.raised.reconnected() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await db.connection.listen(on: FleetDatabase.channel) { notifications in
                    for try await _ in notifications { wake.yield() }
                }
                throw Disconnected()
            }
            group.addTask {
                while true {
                    try await Task.sleep(nanoseconds: poll)
                    wake.yield()
                }
            }
            group.addTask {
                var timers = Timers()
                for await _ in wakeups {
                    timers = try await Self.within(seconds: 5) { [timers] in try await self.cycle(db, timers) }
                }
                throw CancellationError()
            }
            _ = try await group.next()
            group.cancelAll()
        }
    }

    /// When the periodic work of a session last ran (monotonic seconds).
    private struct Timers: Sendable {
        var heartbeat = 0.0
        var traffic = 0.0
        /// When the last window published was taken.
        var window = 0.0
        var prune = 0.0
        var incidents = 0.0
        var requests: (count: Int, at: Double)? = nil
    }

    /// One wake-up: send the outbox, apply new events, and the heartbeat (every second) and pruning
    /// (every 10 minutes) when due.
    private func cycle(_ db: FleetDatabase, _ timers: Timers) async throws -> Timers {
        var timers = timers
        try await flushOutbox(db)
        try await follow(db)
        try await shareRaisedModes(db)
        var now = Self.monotonic()
        let windowAt = state.withLockedValue { $0.window?.at } ?? 0
        if windowAt > timers.window || now - timers.traffic >= config.trafficInterval {
            let fresh = windowAt > timers.window
            (timers.window, timers.traffic) = (windowAt, now)
            try await shareTraffic(db, fresh: fresh)
            now = Self.monotonic()
        }
        if now - timers.heartbeat >= 1 {
            timers.heartbeat = now
            var rate = 0.0
            if let stats = try? await gateway.stats() {
                if let last = timers.requests, now > last.at { rate = Double(stats.requests - last.count) / (now - last.at) }
                timers.requests = (stats.requests, now)
            }
            try await heartbeat(db, requestsPerSecond: rate)
        }
        if now - timers.incidents >= 2 {
            timers.incidents = now
            do {
                try await shareIncidents(db)
            } catch let error as PSQLError where error.serverInfo != nil {
                // A statement the database refused: incidents are a record, not worth the connection.
                logger.warning("cannot share this node's incidents", metadata: ["error": "\(Self.describe(error))"])
            }
        }
        if now - timers.prune >= 600 {
            timers.prune = now
            try await db.prune(days: config.retentionDays, now: Int64(Date().timeIntervalSince1970))
        }
        return timers
    }

    /// Runs `work`, failing with a timeout after `seconds` (a database that stopped answering
    /// without closing the connection).
    static func within<T: Sendable>(seconds: Double, _ work: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await work() }
            group.addTask {
                try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
                throw Timeout()
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else { throw Timeout() }
            return value
        }
    }

    /// Reads the merged ban state in full and applies it (start, and after each reconnection:
    /// notifications sent while disconnected are lost).
    private func resynchronise(_ db: FleetDatabase) async throws {
        let newest = try await db.newestEvent()
        let bans = try await db.bans(now: Int64(Date().timeIntervalSince1970))
        let changed = try await applyAll(bans + db.modes() + sharedExtras(db, now: Int64(Date().timeIntervalSince1970)))
        state.withLockedValue {
            $0.cursor.reset(to: newest)
            $0.status.lastEvent = newest
            $0.lastSync = Self.monotonic()
        }
        logger.info("fleet state read in full", metadata: ["bans": "\(bans.count)", "changed": "\(changed)", "last_event": "\(newest)"])
    }

    /// Applies the events after the cursor, in id order.
    private func follow(_ db: FleetDatabase) async throws {
        var more = true
        while more {
            let floor = state.withLockedValue { $0.cursor.floor }
            let events = try await db.events(after: floor)
            more = events.count == 1000
            let fresh = state.withLockedValue { s in events.filter { s.cursor.isNew($0.id) } }
            // This node's own events too, in id order: applying one again changes nothing, and
            // skipping them would let an older event from another node, read in the same batch,
            // undo a newer decision of this node (a ban replayed after this node's later unban).
            if !fresh.isEmpty { try await applyAll(fresh.map(\.decision)) }
            let now = Self.monotonic()
            state.withLockedValue {
                $0.cursor.record(fresh.map(\.id), now: now)
                $0.status.lastEvent = max($0.status.lastEvent, events.last?.id ?? 0)
                $0.lastSync = now
            }
        }
    }

    /// Sends the outbox to the database, oldest first.
    private func flushOutbox(_ db: FleetDatabase) async throws {
        while true {
            let entries = try outbox.oldest(100)
            guard let last = entries.last else { break }
            for entry in entries {
                try await db.publish(entry.decision, node: config.node, decided: entry.decided)
                // This node then takes the merged state of the address, as every other node has it:
                // the fleet's state may have won over the decision (a later unban, a longer ban),
                // and a full read since the decision may have put back what it undid.
                if let merged = try await db.merged(of: entry.decision) {
                    try await applyAll([merged])
                }
            }
            try outbox.remove(upTo: last.id)
            let count = try outbox.count()
            state.withLockedValue { $0.status.outbox = count }
        }
    }

    /// Publishes this node's last second (sliding: taken every `traffic_interval`) and hands the
    /// other nodes' last seconds, merged per site, to the detector. A summary counts while it was
    /// written within the last second (the database's clock) and for a second after it was read:
    /// a node that stops publishing stops counting, and nothing is counted twice.
    private func shareTraffic(_ db: FleetDatabase, fresh: Bool) async throws {
        let now = Self.monotonic()
        let (window, raised) = state.withLockedValue { ($0.window, $0.raised.held) }
        var own: [String: TrafficSummary] = [:]
        if let window, now - window.at <= 1 {
            // Only sites that had traffic: with hundreds of quiet sites the document stays small.
            for (site, second) in window.seconds where second.requests > 0 { own[site] = TrafficSummary(second) }
            let json = String(decoding: try JSONEncoder().encode(own), as: UTF8.self)
            try await db.publishTraffic(node: config.node, now: Int64(Date().timeIntervalSince1970), counts: json)
        }
        // Every node takes its slices at the same instants of the wall clock and publishes at once:
        // reading a moment later gets the others' summaries of the same instant.
        if fresh { try await Task.sleep(nanoseconds: 40_000_000) }
        var others: [String: TrafficSecond] = [:]
        var rates: [String: [FleetSiteRates]] = [:]
        rates[config.node] = own.sorted { $0.key < $1.key }.map { FleetSiteRates(site: $0.key, $0.value, raised: raised[$0.key].map { ($0.mode, $0.tier) }) }
        for (node, document) in try await db.traffic(maxAge: 1) where node != config.node {
            guard let summaries = try? JSONDecoder().decode([String: TrafficSummary].self, from: Data(document.utf8)) else { continue }
            for (site, summary) in summaries { summary.merge(into: &others[site, default: TrafficSecond()]) }
            rates[node] = summaries.sorted { $0.key < $1.key }.map { FleetSiteRates(site: $0.key, $0.value, raised: nil) }
        }
        try await gateway.setFleetTraffic(others, validFor: 1)
        state.withLockedValue { s in
            // The raised modes of the others, as last read (``shareRaisedModes(_:)``), stay.
            for (node, list) in rates {
                let before = Dictionary((s.rates[node] ?? []).map { ($0.site, ($0.raisedMode, $0.raisedTier)) }, uniquingKeysWith: { a, _ in a })
                s.rates[node] = list.map { r in
                    var r = r
                    if node != config.node, let kept = before[r.site] { (r.raisedMode, r.raisedTier) = kept }
                    return r
                }
            }
            for node in Array(s.rates.keys) where rates[node] == nil { s.rates[node] = nil }
        }
    }

    /// Writes what this node's detection raised (a change at once, renewals every third of
    /// `mode_ttl`) and hands every other node's live raised modes to the detector.
    private func shareRaisedModes(_ db: FleetDatabase) async throws {
        let now = Self.monotonic()
        if let plan = state.withLockedValue({ $0.raised.plan(now: now, ttl: config.modeTTL) }) {
            try await db.publishRaised(node: config.node, plan, ttl: config.modeTTL, announce: plan.changed)
            state.withLockedValue { $0.raised.written(plan, now: now) }
            if plan.changed {
                logger.info("raised modes shared with the fleet", metadata: [
                    "raised": "\(plan.upsert.map { "\($0.site)=\($0.mode.rawValue)/\($0.tier.rawValue)" })", "withdrawn": "\(plan.delete)",
                ])
            }
        }
        let read = try await db.raisedModes().filter { $0.raised.node != config.node }
        try await gateway.setRaisedModes(read)
        state.withLockedValue { s in
            for (node, list) in s.rates where node != config.node {
                s.rates[node] = list.map { r in
                    var r = r
                    let mine = read.first { $0.site == r.site && $0.raised.node == node }
                    (r.raisedMode, r.raisedTier) = (mine?.raised.mode.rawValue, mine?.raised.tier.rawValue)
                    return r
                }
            }
        }
    }

    private func heartbeat(_ db: FleetDatabase, requestsPerSecond: Double) async throws {
        let (lastEvent, waiting) = state.withLockedValue { ($0.status.lastEvent, $0.status.outbox) }
        try await db.heartbeat(
            node: config.node, address: address, started: started, now: Int64(Date().timeIntervalSince1970),
            lastEvent: lastEvent, outbox: waiting, requestsPerSecond: requestsPerSecond
        )
        let nodes = try await db.nodes()
        state.withLockedValue { $0.status.nodes = nodes }
    }

    // MARK: - Connection settings

    /// How to reach the database of `config` (the password read now, from where the config says).
    static func connectionConfiguration(_ config: FleetConfig) throws -> PostgresConnection.Configuration {
        let password: String?
        do {
            password = try config.resolvePassword(environment: ProcessInfo.processInfo.environment)
        } catch {
            throw error
        }
        let tls: PostgresConnection.Configuration.TLS
        switch config.tls {
        case .disable:
            tls = .disable
        case .prefer, .require:
            var t = TLSConfiguration.makeClientConfiguration()
            t.certificateVerification = .none
            let context = try NIOSSLContext(configuration: t)
            tls = config.tls == .prefer ? .prefer(context) : .require(context)
        case .verifyFull:
            var t = TLSConfiguration.makeClientConfiguration()
            t.certificateVerification = .fullVerification
            if let ca = config.caFile { t.trustRoots = .file(ca) }
            tls = .require(try NIOSSLContext(configuration: t))
        }
        var c = PostgresConnection.Configuration(host: config.host, port: config.port, username: config.user, password: password, database: config.database, tls: tls)
        c.options.connectTimeout = .seconds(3)
        return c
    }
}
