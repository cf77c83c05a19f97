import NIOCore
import NIOSSL
import RampartCore

/// The compiled, immutable form of a ``GatewayConfig`` that the data plane reads. One is built per
/// load or reload and swapped in whole on every event loop, so a request sees one config from
/// start to end.
final class RuntimeConfig: Sendable {
    /// The config it was compiled from.
    let source: GatewayConfig
    /// Host to site routing.
    let router: SiteRouter
    /// Proxies whose forwarding headers are believed.
    let trusted: CIDRSet
    /// A number that grows with each reload (for logs).
    let generation: Int
    /// Client TLS contexts for origins reached over TLS, by site and origin index.
    let originTLS: [[NIOSSLContext?]]

    /// Throws ``OriginTLSError`` when an origin's CA file cannot be used.
    init(_ config: GatewayConfig, generation: Int) throws {
        self.source = config
        self.router = SiteRouter(sites: config.sites, defaultSite: config.defaultSite)
        self.trusted = config.trustedProxies
        self.generation = generation
        self.originTLS = try config.sites.map { site in
            try site.origins.map { origin in
                try origin.tls.map { try Self.clientContext($0, site: site.name, origin: origin.address) }
            }
        }
    }

    /// TLS 1.2+ to an origin: the CA file's certificates (or the system's) as trust roots, chain
    /// and name verified unless `verify: false`.
    static func clientContext(_ tls: OriginTLS, site: String, origin: HostPort) throws -> NIOSSLContext {
        var c = TLSConfiguration.makeClientConfiguration()
        c.minimumTLSVersion = .tlsv12
        c.applicationProtocols = ["http/1.1"]
        c.certificateVerification = tls.verify ? .fullVerification : .none
        if let file = tls.caFile {
            let certificates: [NIOSSLCertificate]
            do {
                certificates = try NIOSSLCertificate.fromPEMFile(file)
            } catch {
                throw OriginTLSError(message: "site \(site), origin \(origin): cannot read CA certificates from \(file): \(error)")
            }
            guard !certificates.isEmpty else {
                throw OriginTLSError(message: "site \(site), origin \(origin): no PEM certificate in \(file)")
            }
            c.trustRoots = .certificates(certificates)
        }
        do {
            return try NIOSSLContext(configuration: c)
        } catch {
            throw OriginTLSError(message: "site \(site), origin \(origin): cannot set up TLS: \(error)")
        }
    }

    var sites: [SiteConfig] { source.sites }
}

/// An origin's TLS settings cannot be used (unreadable CA file, no certificate in it).
public struct OriginTLSError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Decision counters of one event loop. Plain integers: only that loop writes them; a snapshot is
/// taken on the loop and summed across loops by the gateway.
struct LoopCounters: Sendable {
    var connectionsAccepted = 0
    var requests = 0
    var proxied = 0
    /// Requests a shadow-mode rule would have refused (counted, not enforced).
    var shadowLimited = 0
    /// Requests answered from the micro-cache (fresh).
    var cacheHits = 0
    /// Requests answered with a stale copy (origin down, busy, or being refreshed).
    var cacheStale = 0
    /// Bans issued (on the accept loop).
    var bansIssued = 0
    /// Requests sent to an origin that checks or ejection had taken out, because all were out.
    var panicRouted = 0
    /// Connections that chose HTTP/2 by ALPN.
    var http2Connections = 0
    /// Challenges answered with a redirect or a page.
    var challengesIssued = 0
    /// Clearances handed out (cookie check, proof of work, wait, and cookies given in elevated mode).
    var clearancesIssued = 0
    /// Requests let through on a clearance while the site was challenging.
    var clearedRequests = 0
    /// Clearances or answers refused (forged, replayed, expired, wrong subnet, wrong answer).
    var challengeFailures = 0
    var rejections = [Int](repeating: 0, count: RejectReason.allCases.count)
    /// Response times of answered requests (head received to response end), cumulative buckets
    /// by upper bound in seconds (``latencyBounds``), plus their sum and count.
    var latencyBuckets = [Int](repeating: 0, count: LoopCounters.latencyBounds.count)
    var latencySumMicros = 0
    var latencyCount = 0

    static let latencyBounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    mutating func observeLatency(micros: Int) {
        latencySumMicros += micros
        latencyCount += 1
        let seconds = Double(micros) / 1e6
        for i in Self.latencyBounds.indices where seconds <= Self.latencyBounds[i] {
            latencyBuckets[i] += 1
            return
        }
    }

    static let reasonIndex: [RejectReason: Int] = Dictionary(
        uniqueKeysWithValues: RejectReason.allCases.enumerated().map { ($1, $0) }
    )

    mutating func count(_ reason: RejectReason) {
        rejections[Self.reasonIndex[reason]!] += 1
    }

    mutating func add(_ other: LoopCounters) {
        connectionsAccepted += other.connectionsAccepted
        requests += other.requests
        proxied += other.proxied
        shadowLimited += other.shadowLimited
        cacheHits += other.cacheHits
        cacheStale += other.cacheStale
        bansIssued += other.bansIssued
        panicRouted += other.panicRouted
        http2Connections += other.http2Connections
        challengesIssued += other.challengesIssued
        clearancesIssued += other.clearancesIssued
        clearedRequests += other.clearedRequests
        challengeFailures += other.challengeFailures
        for i in rejections.indices { rejections[i] += other.rejections[i] }
        for i in latencyBuckets.indices { latencyBuckets[i] += other.latencyBuckets[i] }
        latencySumMicros += other.latencySumMicros
        latencyCount += other.latencyCount
    }
}

/// A snapshot of the gateway's decision counters, summed over event loops.
public struct GatewayStats: Sendable, Equatable {
    /// Connections admitted.
    public var connectionsAccepted: Int
    /// Request heads received.
    public var requests: Int
    /// Requests answered by an origin.
    public var proxied: Int
    /// Requests a shadow-mode rate limit would have refused.
    public var shadowLimited: Int
    /// Requests answered from the micro-cache while fresh.
    public var cacheHits: Int
    /// Requests answered with a stale copy.
    public var cacheStale: Int
    /// Automatic bans issued.
    public var bansIssued: Int
    /// Challenges issued, clearances handed out, requests passed on a clearance, failed answers.
    public var challengesIssued = 0
    public var clearancesIssued = 0
    public var clearedRequests = 0
    public var challengeFailures = 0
    /// Response-time histogram: upper bounds in seconds, counts per bucket (not cumulative), sum, count.
    public var latencyBounds: [Double] = []
    public var latencyBuckets: [Int] = []
    public var latencySumSeconds: Double = 0
    public var latencyCount = 0
    /// Refusals by reason (only reasons seen at least once).
    public var rejections: [RejectReason: Int]
    /// The kernel ban sink's counters, when `bans.kernel` is on.
    public var kernelBans: KernelBanStats? = nil
}
