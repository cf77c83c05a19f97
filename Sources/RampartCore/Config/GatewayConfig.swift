import NIOCore

/// A `host:port` pair as written in the config (`127.0.0.1:8080`, `[::1]:8080`, `origin.local:80`).
public struct HostPort: Hashable, Sendable, CustomStringConvertible {
    /// Host name or IP literal, without brackets.
    public var host: String
    /// TCP port, 1...65535.
    public var port: Int

    /// Builds a host and port pair.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` or `[v6]:port`; nil when the port is missing or out of range. Port 0
    /// (any free port) is accepted here; origins refuse it during validation.
    public init?(parsing text: String) {
        let s = Substring(text)
        var host: Substring
        var portText: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            host = s[s.index(after: s.startIndex)..<close]
            let after = s[s.index(after: close)...]
            guard after.hasPrefix(":") else { return nil }
            portText = after.dropFirst()
        } else {
            guard let colon = s.lastIndex(of: ":"), !s[..<colon].contains(":") else { return nil }
            host = s[..<colon]
            portText = s[s.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else { return nil }
        self.host = String(host)
        self.port = port
    }

    /// `host:port`, with brackets around IPv6 literals.
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// Size, count and time limits. The same set of keys exists at the top level, per listener and per
/// site; each key says which of those scopes reads it (see `docs/configuration.md`).
public struct Limits: Hashable, Sendable {
    /// Most open client connections on one listener. Scope: listener.
    public var maxConnections: Int = 10_000
    /// Most concurrent connections from one client address on one listener. Scope: listener.
    public var maxConnectionsPerIP: Int = 64
    /// Most bytes of request header names and values together. Scope: listener.
    public var maxHeaderBytes: Int = 16 * 1024
    /// Most request header fields. Scope: listener.
    public var maxHeaderCount: Int = 100
    /// Most requests served on one keep-alive connection before it is closed. Scope: listener.
    public var maxRequestsPerConnection: Int = 1000
    /// Longest request target (path and query), in bytes. Scope: site.
    public var maxURIBytes: Int = 8 * 1024
    /// Largest request body, in bytes. Scope: site.
    public var maxBodyBytes: Int = 10 * 1024 * 1024

    /// Whole time allowed from a request's first byte to the end of its headers (slowloris). Scope: listener.
    public var headerTimeout: TimeAmount = .seconds(10)
    /// Idle time allowed between requests on a keep-alive connection. Scope: listener.
    public var idleTimeout: TimeAmount = .seconds(60)
    /// Time a client may leave a response unread (slow read) before the connection is closed. Scope: listener.
    public var sendTimeout: TimeAmount = .seconds(30)
    /// Whole time allowed to receive a request body. Scope: site.
    public var bodyTimeout: TimeAmount = .seconds(60)
    /// Slowest body upload accepted, in bytes per second, averaged over `rateWindow`; 0 disables. Scope: site.
    public var bodyMinRate: Int = 1024
    /// Time allowed to open a TCP connection to an origin. Scope: site.
    public var originConnectTimeout: TimeAmount = .seconds(3)
    /// Time allowed for an origin to start its response once the request is sent. Scope: site.
    public var originResponseTimeout: TimeAmount = .seconds(30)

    /// Window over which `bodyMinRate` is averaged (fixed, 5 seconds).
    public static let rateWindow: TimeAmount = .seconds(5)

    /// The defaults listed in `docs/configuration.md`.
    public init() {}
}

/// How a site spreads requests over its origins.
public enum BalanceStrategy: String, Sendable, Hashable, CaseIterable {
    /// Each origin in turn.
    case roundRobin = "round_robin"
    /// The origin with the fewest requests in flight (on this event loop).
    case leastConnections = "least_connections"
}

/// Active health checking of a site's origins.
public struct HealthCheckConfig: Hashable, Sendable {
    /// False turns active checks off (passive ejection still applies).
    public var enabled: Bool = true
    /// Path requested with GET; a status below 500 counts as healthy.
    public var path: String = "/"
    /// Time between checks of one origin.
    public var interval: TimeAmount = .seconds(5)
    /// Time one check may take.
    public var timeout: TimeAmount = .seconds(2)
    /// Consecutive failed checks that mark an origin down.
    public var unhealthyAfter: Int = 3
    /// Consecutive good checks that mark a down origin up again.
    public var healthyAfter: Int = 2

    /// The documented defaults.
    public init() {}
}

/// Passive ejection: origins that fail live requests are taken out of rotation for a while.
public struct PassiveHealthConfig: Hashable, Sendable {
    /// Consecutive failures (connect error, timeout, 502/503/504 from the origin) that eject an origin.
    public var maxFails: Int = 3
    /// How long an ejected origin stays out before it is tried again.
    public var ejectFor: TimeAmount = .seconds(10)

    /// The documented defaults.
    public init() {}
}

/// How clients earn priority in origin queues.
public struct KnownGoodConfig: Hashable, Sendable {
    /// Successful origin answers needed.
    public var successes = 3
    /// How long a client must have been seen before it counts (sources that come with an attack
    /// do not jump the queue within this time).
    public var minimumAge: TimeAmount = .seconds(30)
    /// How long priority lasts without a new success.
    public var lifetime: TimeAmount = .hours(1)
    /// Address blocks that always have priority (monitoring, partners, the agency's own network).
    public var allow = CIDRSet()

    /// The documented defaults.
    public init() {}
}

/// One origin server of a site.
public struct OriginConfig: Hashable, Sendable {
    /// Where the origin listens.
    public var address: HostPort
    /// Most open connections (and so concurrent requests) from the gateway to this origin.
    public var maxConnections: Int = 128
    /// TLS to the origin (nil: plain HTTP).
    public var tls: OriginTLS? = nil
    /// Learn how many requests the origin serves at once from its response times and 503s
    /// (``AdaptiveConcurrency``), up to `maxConnections`: the excess waits in the gateway's
    /// priority queue instead of the origin's.
    public var adaptiveConcurrency = true
    /// The learned limit never goes below this many requests at once.
    public var minConcurrency = 2

    /// An origin at `address` with the default connection cap.
    public init(address: HostPort) { self.address = address }

    /// Over TLS, the name sent in SNI and verified in the certificate: `server_name`, else the
    /// address's host when it is a name (SNI carries names only; an address is verified as such).
    public var tlsServerName: String? {
        tls.flatMap { $0.serverName ?? (IPAddress(address.host) == nil ? address.host : nil) }
    }
}

/// TLS from the gateway to an origin. The origin's certificate is verified against `ca` (or the
/// system's trust store) and the name `serverName` (or the address's host).
public struct OriginTLS: Hashable, Sendable {
    /// PEM file with the CA certificates to trust; nil trusts the system store.
    public var caFile: String? = nil
    /// The name sent in SNI and checked in the certificate; nil uses the address's host.
    public var serverName: String? = nil
    /// Verify the certificate (chain and name). Off only for tests; a warning is logged.
    public var verify = true

    public init() {}
}

/// One protected website: the host names it answers and the origins behind it.
public struct SiteConfig: Hashable, Sendable {
    /// Short name used in logs, metrics and the admin API.
    public var name: String
    /// Host names (`example.org`, `*.example.org`), matched case-insensitively without the port.
    public var hosts: [String]
    /// The origin servers.
    public var origins: [OriginConfig]
    /// How requests are spread over `origins`.
    public var balance: BalanceStrategy = .leastConnections
    /// Active health checks.
    public var healthCheck = HealthCheckConfig()
    /// Passive ejection.
    public var passive = PassiveHealthConfig()
    /// Request-phase limits (body, URI, origin timeouts).
    public var limits: Limits
    /// Rate limits, all applied to every request they match; ``RateLimitRule/defaults`` unless configured.
    public var rateLimits: [RateLimitRule] = RateLimitRule.defaults
    /// The micro-cache.
    public var cache = CacheConfig()
    /// Cookies that carry a session the origin issued (e.g. `sessionid`): a session the origin keeps
    /// answering with success earns its holder priority in origin queues, like a known-good address.
    public var sessionCookies: [String] = []
    /// Treat `Authorization: Bearer` tokens (other than configured API keys) the same way.
    public var bearerCredentials = false
    /// API keys of known clients (tax-filing software, partners): requests that carry one go first
    /// in origin queues and are limited per key (rules with `key: api_key`) instead of per address.
    public var apiKeys: Set<String> = []
    /// When the site's mode changes by itself.
    public var detection = DetectionConfig()
    /// The site's own certificate, chosen by SNI on TLS listeners.
    public var tls: CertificateFiles? = nil
    /// `Strict-Transport-Security` value added to HTTPS responses (nil: none).
    public var hsts: String? = nil
    /// Answer plain-HTTP requests with a redirect to HTTPS.
    public var httpsRedirect = false
    /// A mode fixed by the operator in the config (`mode:`); nil lets the detector decide.
    public var fixedMode: SiteMode? = nil
    /// Who is challenged, with what, and what a clearance allows.
    public var challenge = ChallengeConfig()
    /// Failed logins and unknown API keys counted against their sources (``CredentialFailures``).
    public var credentials = CredentialGuardConfig()
    /// Clients refused or challenged by JA4 TLS fingerprint.
    public var fingerprints = FingerprintRules()
    /// Identity and routing-override request headers stripped or set before forwarding.
    public var requestHeaders = RequestHeaderPolicy()
    /// Rules by country and network (`geo_rules`), first match decides.
    package var geoRules = GeoRules()

    /// A site with default settings.
    public init(name: String, hosts: [String], origins: [OriginConfig], limits: Limits = Limits()) {
        self.name = name
        self.hosts = hosts
        self.origins = origins
        self.limits = limits
    }
}

/// A certificate chain and its private key, as PEM files.
public struct CertificateFiles: Hashable, Sendable {
    /// PEM file with the certificate chain (leaf first).
    public var certificate: String
    /// PEM file with the private key.
    public var key: String

    public init(certificate: String, key: String) {
        self.certificate = certificate
        self.key = key
    }
}

/// TLS on a listener.
public struct ListenerTLS: Hashable, Sendable {
    /// The default certificate (when no site's certificate matches the SNI name).
    public var files: CertificateFiles
    /// Offer HTTP/2 by ALPN (`h2`, then `http/1.1`).
    public var http2 = true
    /// TLS handshakes one source may start per second, and its burst (handshake floods).
    public var handshakeRate: Double = 20
    public var handshakeBurst: Double = 40
    /// Most handshakes in progress at once on the listener (split over event loops).
    public var maxHandshakes = 2000

    public init(files: CertificateFiles) { self.files = files }
}

/// One client-facing listener.
public struct ListenerConfig: Hashable, Sendable {
    /// Address and port to bind.
    public var address: HostPort
    /// When true, every connection must start with a PROXY protocol v1 or v2 header.
    public var proxyProtocol: Bool = false
    /// Peers allowed to send a PROXY protocol header (the load balancers in front); empty allows
    /// any peer (`rampart check` warns). A header from another peer closes the connection.
    public var proxyProtocolFrom = CIDRSet()
    /// TLS termination; nil for plain HTTP.
    public var tls: ListenerTLS? = nil
    /// Connection-phase limits (connections, header size and time, keep-alive).
    public var limits: Limits

    /// A listener with default settings.
    public init(address: HostPort, limits: Limits = Limits()) {
        self.address = address
        self.limits = limits
    }
}

/// The whole gateway configuration, as decoded and validated from YAML or built from CLI flags.
public struct GatewayConfig: Hashable, Sendable {
    /// Client-facing listeners.
    public var listeners: [ListenerConfig]
    /// Protected sites.
    public var sites: [SiteConfig]
    /// Proxies whose `X-Forwarded-For` is believed.
    public var trustedProxies = CIDRSet()
    /// Name of the site that serves requests for unknown hosts; nil answers them with 421.
    public var defaultSite: String? = nil
    /// Admin listener address.
    public var adminAddress = HostPort(host: "127.0.0.1", port: 9090)
    /// URLs that get a JSON POST on mode changes and when incidents open and close.
    public var alertWebhooks: [String] = []
    /// JSON access log: `-` for standard output, a file path, or nil for none.
    public var accessLogPath: String? = nil
    /// Most access-log lines per second per event loop (the rest are counted, not written).
    public var accessLogPerSecond = 2000
    /// False: no admin listener.
    public var adminEnabled = true
    /// Admin token from the config (`admin.token` or `admin.token_file`); `RAMPART_ADMIN_TOKEN`
    /// wins over it, and without either a token is generated in the state folder.
    public var adminToken: String? = nil
    /// Folder for local state (bans, incidents, generated admin token).
    public var statePath: String = "rampart-state"
    /// How long SIGTERM waits for in-flight requests before closing what is left.
    public var drainTimeout: TimeAmount = .seconds(30)
    /// Top-level limits: the defaults every listener and site starts from.
    public var limits = Limits()
    /// How clients earn priority in origin queues.
    public var knownGood = KnownGoodConfig()
    /// Automatic bans of sources that keep tripping limits.
    public var bans = BanPolicy()
    /// What NIS2 incident reports contain (`reports:`).
    public var reports = ReportConfig()
    /// Bans pushed into the kernel firewall (`bans.kernel*`).
    package var kernelBans = KernelBanConfig()
    /// Geolocation sources (`geoip:`); nil when the section is absent (the defaults then apply
    /// when a site has geo rules).
    package var geoip: GeoIPConfig? = nil
    /// The fleet this node joins (`fleet:` or `--fleet`); nil: one node on SQLite, no database connection.
    public var fleet: FleetConfig? = nil

    /// The geolocation the gateway loads: the configured one, else the defaults when some site has
    /// geo rules, else none (no lookup costs anything).
    package var effectiveGeoIP: GeoIPConfig? {
        if let geoip { return geoip }
        return sites.contains { !$0.geoRules.isEmpty } ? GeoIPConfig() : nil
    }

    /// A config with the given listeners and sites and default everything else.
    public init(listeners: [ListenerConfig], sites: [SiteConfig]) {
        self.listeners = listeners
        self.sites = sites
    }

    /// The one-site config that `rampart run --listen L --origin O` uses: every protection on with
    /// its defaults, the site answering any host name (there is only one).
    public static func oneSite(listen: HostPort, origins: [HostPort]) -> GatewayConfig {
        var site = SiteConfig(name: "default", hosts: ["*"], origins: origins.map { OriginConfig(address: $0) })
        site.healthCheck.enabled = true
        var config = GatewayConfig(listeners: [ListenerConfig(address: listen)], sites: [site])
        config.defaultSite = "default"
        return config
    }
}
