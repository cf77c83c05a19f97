import Atomics
import NIOCore
import RampartCore

extension IPAddress {
    /// The IP of a socket address; nil for Unix sockets.
    init?(_ address: SocketAddress?) {
        switch address {
        case .v4(let a):
            self.init(v4: UInt32(bigEndian: a.address.sin_addr.s_addr))
        case .v6(let a):
            var high: UInt64 = 0
            var low: UInt64 = 0
            withUnsafeBytes(of: a.address.sin6_addr) { raw in
                for i in 0..<8 { high = high << 8 | UInt64(raw[i]) }
                for i in 8..<16 { low = low << 8 | UInt64(raw[i]) }
            }
            self.init(high: high, low: low)
        default:
            return nil
        }
    }
}

/// The ban list, confined to the accept loop and shared by every listener's gate.
final class BanRegistry {
    var list: BanList
    let loop: LoopContext
    private let store: (any BanStore)?
    /// Why each ban in force was issued (for the admin API); bounded by the list's capacity.
    private(set) var reasons: [IPAddress: String] = [:]
    /// Told of every automatic ban (address, reason, seconds), on the accept loop: incidents
    /// record them.
    var onAutomaticBan: ((IPAddress, String, Int64) -> Void)?
    /// Where bans are also pushed into the kernel firewall (`bans.kernel`), once its table is loaded.
    var kernel: KernelBanSink?
    /// Told of every ban and unban decided here (not of those applied from the fleet), on the
    /// accept loop: the fleet shares them.
    var onDecision: ((SharedDecision) -> Void)?

    init(policy: BanPolicy, loop: LoopContext, store: (any BanStore)?) {
        self.list = BanList(policy: policy)
        self.loop = loop
        self.store = store
        // Bans survive a restart: put back the ones still in force.
        restoreStored()
    }

    /// Puts back the stored bans still in force (at start, and after a binary upgrade once the
    /// previous process has written its last bans). Returns how many were read.
    @discardableResult
    func restoreStored() -> Int {
        guard let store else { return 0 }
        let now = Int64(loop.eventLoop.now.uptimeNanoseconds)
        let unix = unixNow()
        var count = 0
        do {
            for record in try store.activeBans(now: unix) {
                guard let ip = IPAddress(record.address) else { continue }
                // Saturating: a stored end far in the future (or a clock far in the past) bans until
                // the end of the list's clock rather than trapping.
                let remaining = Int64.saturatingProduct(Int64.saturatingDifference(record.until, unix), 1_000_000_000)
                list.restore(ip, until: Int64.saturatingSum(now, remaining), level: record.level, now: now)
                reasons[ip] = record.reason
                count += 1
            }
        } catch {
            loop.logger.error("cannot read stored bans; starting without them", metadata: ["error": "\(error)"])
        }
        return count
    }

    private func persist(_ ip: IPAddress, reason: String) {
        reasons[ip] = reason
        if reasons.count > list.policy.capacity * 2 { reasons = reasons.filter { list.entry($0.key) != nil } }
        guard let store, let entry = list.entry(ip) else { return }
        let now = Int64(loop.eventLoop.now.uptimeNanoseconds)
        let unix = unixNow()
        let until = Int64.saturatingSum(unix, Int64.saturatingDifference(entry.until, now) / 1_000_000_000)
        store.saveBan(BanRecord(address: ip.description, until: until, level: entry.level, reason: reason, created: unix))
    }

    /// Records a ban applied from the fleet: its reason, and in the local store (so it survives a restart).
    func noteShared(_ ip: IPAddress, reason: String, until: Int64, level: Int) {
        reasons[ip] = reason
        if reasons.count > list.policy.capacity * 2 { reasons = reasons.filter { list.entry($0.key) != nil } }
        store?.saveBan(BanRecord(address: ip.description, until: until, level: level, reason: reason, created: unixNow()))
    }

    /// Forgets a ban the fleet lifted.
    func forgetShared(_ ip: IPAddress) {
        reasons[ip] = nil
        store?.removeBan(address: ip.description)
    }

    func isBanned(_ ip: IPAddress) -> Bool {
        list.isBanned(ip, now: Int64(loop.eventLoop.now.uptimeNanoseconds))
    }

    /// Bans `ip` (from a worker loop's report), logged once per ban.
    func ban(_ ip: IPAddress, reason: String) {
        let now = Int64(loop.eventLoop.now.uptimeNanoseconds)
        guard !list.isBanned(ip, now: now) else { return }
        let length = list.ban(ip, now: now)
        persist(ip, reason: reason)
        kernel?.offer(.add(ip, seconds: Int(length.nanoseconds / 1_000_000_000)))
        loop.counters.bansIssued += 1
        loop.logger.notice("source banned", metadata: ["client": "\(ip)", "seconds": "\(length.nanoseconds / 1_000_000_000)", "reason": "\(reason)"])
        onAutomaticBan?(ip, reason, length.nanoseconds / 1_000_000_000)
        onDecision?(.ban(address: ip.description, until: Int64.saturatingSum(unixNow(), length.nanoseconds / 1_000_000_000), reason: reason, by: "automatic"))
    }
}

extension BanRegistry {
    /// An operator's ban for `length`.
    func ban(_ ip: IPAddress, length: TimeAmount, reason: String) {
        let now = Int64(loop.eventLoop.now.uptimeNanoseconds)
        list.ban(ip, now: now, length: length)
        persist(ip, reason: reason)
        kernel?.offer(.add(ip, seconds: Int(length.nanoseconds / 1_000_000_000)))
        loop.counters.bansIssued += 1
        loop.logger.notice("source banned", metadata: ["client": "\(ip)", "seconds": "\(length.nanoseconds / 1_000_000_000)", "reason": "\(reason)"])
        onDecision?(.ban(address: ip.description, until: Int64.saturatingSum(unixNow(), length.nanoseconds / 1_000_000_000), reason: reason, by: "operator"))
    }

    /// Lifts a ban; false when there was none in force.
    func unban(_ ip: IPAddress) -> Bool {
        let was = isBanned(ip)
        onDecision?(.unban(address: ip.description, by: "operator"))
        list.unban(ip)
        reasons[ip] = nil
        store?.removeBan(address: ip.description)
        if was { kernel?.offer(.remove(ip)) }
        return was
    }
}

@available(*, unavailable)
extension BanRegistry: Sendable {}

/// Connection admission for one listener, the first and cheapest guard: it runs on the listener's
/// accept loop, sees each accepted socket before it is registered with a worker loop, and closes
/// over-limit ones at once, before a byte is read or parsed.
///
/// Listeners that speak the PROXY protocol learn the client address only later; their connections
/// are admitted through ``admit(_:)`` from the worker loop once the header is read. Before that,
/// the peer itself (the load balancer in front) must be in the listener's `proxy_protocol_from`
/// blocks: a connection from anywhere else is closed at accept, before a byte of it is read, so no
/// header it sends is ever believed.
final class AcceptGate: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    private var admission: ConnectionAdmission
    private let loop: LoopContext
    private let proxyProtocol: Bool
    /// The config listener (index into `listeners`) this gate guards; more than one only when the
    /// bound address cannot tell them apart (see ``candidates(boundTo:proxyProtocol:in:)``), and
    /// nil until the listening socket is bound.
    private var listeners: [Int]?
    /// Set once the event loops are stopping: closing connections then no longer report back.
    let stopping = ManagedAtomic(false)

    private let bans: BanRegistry?

    /// A gate for the listener at index `listener` of the config; when nil, the listener is found
    /// by the address the listening socket is bound to, once it is bound.
    init(limits: Limits, proxyProtocol: Bool, loop: LoopContext, bans: BanRegistry? = nil, listener: Int? = nil) {
        self.bans = bans
        self.admission = ConnectionAdmission(maxConnections: limits.maxConnections, maxPerAddress: limits.maxConnectionsPerIP)
        self.proxyProtocol = proxyProtocol
        self.loop = loop
        self.listeners = listener.map { [$0] }
    }

    func channelActive(context: ChannelHandlerContext) {
        if proxyProtocol {
            let configured = loop.config.source.listeners
            if listeners == nil {
                listeners = Self.candidates(boundTo: context.channel.localAddress, proxyProtocol: true, in: configured)
            }
            let found = (listeners ?? []).filter { $0 < configured.count }
            let address = context.channel.localAddress.map { "\($0)" } ?? "?"
            if found.isEmpty {
                loop.logger.error("cannot tell which listener is bound here; every PROXY connection to it is refused", metadata: ["address": "\(address)"])
            } else if found.contains(where: { configured[$0].proxyProtocolFrom.isEmpty }) {
                loop.logger.warning(
                    "PROXY headers are believed from any peer: set proxy_protocol_from to the load balancers in front",
                    metadata: ["address": "\(address)"]
                )
            }
        }
        context.fireChannelActive()
    }

    /// The config listeners a listening socket bound to `address` can be: same IP (a host name
    /// matches any) and same port, else port 0 (any free port). Several only when two listeners
    /// on one address both asked for port 0; the gate then requires what every one of them does.
    static func candidates(boundTo address: SocketAddress?, proxyProtocol: Bool, in listeners: [ListenerConfig]) -> [Int] {
        guard let address, let port = address.port else { return [] }
        let ip = IPAddress(address)
        let matches = listeners.indices.filter { i in
            let l = listeners[i]
            guard l.proxyProtocol == proxyProtocol, l.address.port == port || l.address.port == 0 else { return false }
            guard let configured = IPAddress(l.address.host) else { return true }
            return configured == ip
        }
        let exact = matches.filter { listeners[$0].address.port == port }
        return exact.isEmpty ? matches : exact
    }

    /// True when `peer` may send this listener a PROXY header: it is inside the
    /// `proxy_protocol_from` blocks of the listener (of every candidate), read from the config in
    /// force so a reload applies to new connections. Unknown listener or peer: false.
    func trustsProxyHeaders(from peer: SocketAddress?) -> Bool {
        let configured = loop.config.source.listeners
        guard let listeners, !listeners.isEmpty else { return false }
        let ip = IPAddress(peer)
        for i in listeners {
            guard i < configured.count else { return false }
            let from = configured[i].proxyProtocolFrom
            if from.isEmpty { continue }
            guard let ip, from.contains(ip) else { return false }
        }
        return true
    }

    /// Applies new caps from a reloaded config (open connections stay).
    func update(limits: Limits) {
        admission.maxConnections = limits.maxConnections
        admission.maxPerAddress = limits.maxConnectionsPerIP
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        if proxyProtocol {
            guard trustsProxyHeaders(from: child.remoteAddress) else {
                loop.reject(.proxyProtocolUntrusted, client: IPAddress(child.remoteAddress))
                child.close(promise: nil)
                return
            }
            // Only the total is known to matter here; the per-address cap waits for the real address.
            if admission.open >= admission.maxConnections {
                loop.reject(.maxConnections, client: IPAddress(child.remoteAddress))
                child.close(promise: nil)
                return
            }
            context.fireChannelRead(data)
            return
        }
        guard let ip = IPAddress(child.remoteAddress) else {
            context.fireChannelRead(data)
            return
        }
        if let bans, bans.isBanned(ip) {
            // Banned: closed before a byte is read. Counted, not logged (the ban itself was).
            loop.counters.count(.banned)
            child.close(promise: nil)
            return
        }
        if let reason = admission.admit(ip) {
            loop.reject(reason, client: ip)
            child.close(promise: nil)
            return
        }
        loop.counters.connectionsAccepted += 1
        releaseOnClose(child, ip: ip)
        context.fireChannelRead(data)
    }

    /// Admits a connection whose address came from a PROXY header. Runs on the accept loop.
    func admit(_ ip: IPAddress, channel: any Channel) -> RejectReason? {
        if let bans, bans.isBanned(ip) {
            loop.counters.count(.banned)
            return .banned
        }
        if let reason = admission.admit(ip) {
            loop.reject(reason, client: ip)
            return reason
        }
        loop.counters.connectionsAccepted += 1
        releaseOnClose(channel, ip: ip)
        return nil
    }

    /// Gives the connection's slot back on this gate's loop when it closes.
    private func releaseOnClose(_ channel: any Channel, ip: IPAddress) {
        let bound = NIOLoopBound(self, eventLoop: loop.eventLoop)
        let stopping = self.stopping
        channel.closeFuture.whenComplete { _ in
            guard !stopping.load(ordering: .relaxed) else { return }
            bound.eventLoop.execute { bound.value.admission.release(ip) }
        }
    }

    /// Open connections admitted by this gate.
    var openConnections: Int { admission.open }
}

@available(*, unavailable)
extension AcceptGate: Sendable {}

/// Reads the PROXY protocol header that opens each connection on listeners that enable it, hands
/// the source address to the client handler and the accept gate, then removes itself. A missing or
/// malformed header closes the connection, counted.
final class ProxyProtocolHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum State {
        /// Collecting the header.
        case reading
        /// Header read; waiting for the accept gate's verdict, keeping what arrives meanwhile.
        case admitting
        /// Admitted: bytes flow on (until this handler is gone).
        case passthrough
    }

    private var state = State.reading
    private var buffered: ByteBuffer?
    private let onSource: (IPAddress) -> Void
    private let loop: LoopContext
    private let gate: NIOLoopBound<AcceptGate>

    /// `onSource` learns the client address the header gives (before admission is decided).
    init(loop: LoopContext, gate: NIOLoopBound<AcceptGate>, onSource: @escaping (IPAddress) -> Void) {
        self.onSource = onSource
        self.loop = loop
        self.gate = gate
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        switch state {
        case .passthrough:
            context.fireChannelRead(data)
            return
        case .admitting:
            buffered!.writeBuffer(&incoming)
            return
        case .reading:
            if buffered == nil { buffered = incoming } else { buffered!.writeBuffer(&incoming) }
        }
        switch ProxyProtocol.parse(buffered!.readableBytesView) {
        case .needMoreData:
            return
        case .invalid(let reason):
            let r: RejectReason = reason == "proxy_protocol_missing" ? .proxyProtocolMissing : .proxyProtocolMalformed
            loop.reject(r, client: IPAddress(context.channel.remoteAddress), detail: reason)
            buffered = nil
            context.close(promise: nil)
        case .header(let length, let source, _):
            state = .admitting
            buffered!.moveReaderIndex(forwardBy: length)
            let ip = source ?? IPAddress(context.channel.remoteAddress) ?? IPAddress(v4: 0)
            onSource(ip)
            let channel = context.channel
            let gate = self.gate
            let verdict = gate.eventLoop.submit { gate.value.admit(ip, channel: channel) }
            verdict.assumeIsolated(on: context.eventLoop).whenComplete { result in
                guard case .success(nil) = result else {
                    context.close(promise: nil)
                    return
                }
                self.state = .passthrough
                let rest = self.buffered!
                self.buffered = nil
                if rest.readableBytes > 0 {
                    context.fireChannelRead(self.wrapInboundOut(rest))
                    context.fireChannelReadComplete()
                }
                context.pipeline.syncOperations.removeHandler(self, promise: nil)
            }
        }
    }
}

extension EventLoopFuture {
    /// `assumeIsolated()` after hopping to `loop`.
    func assumeIsolated(on loop: any EventLoop) -> EventLoopFuture<Value>.Isolated {
        self.hop(to: loop).assumeIsolated()
    }
}

@available(*, unavailable)
extension ProxyProtocolHandler: Sendable {}
