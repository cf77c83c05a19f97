import NIOCore
import NIOHTTP1

/// A site's failed-credentials guard (`credentials:` in the config).
public struct CredentialGuardConfig: Hashable, Sendable {
    /// False: failed credentials are not counted.
    public var enabled = true
    /// Paths (whole segments, like `challenge.exempt_paths`) where a POST is a login attempt.
    public var loginRoutes: [String] = ["/login", "/signin", "/wp-login.php", "/user/login", "/account/login", "/auth/login"]
    /// Origin statuses that mean "wrong credentials" (to a login or to an unknown API key).
    public var failureStatus: [Int] = [401, 403]
    /// Text in the `Location` of a redirect answering a login that marks a failed one
    /// (`/login?error=1`); nil: redirects are never failures.
    public var failureLocation: String? = "error"
    /// Failed attempts allowed per source address, per subnet (IPv4 /24, IPv6 /64) and per TLS
    /// fingerprint within `window`; past one, that key is blocked on login routes and unknown keys.
    public var perSource = 5
    public var perSubnet = 30
    public var perFingerprint = 300
    /// Over how long the allowances above refill.
    public var window: TimeAmount = .minutes(1)
    /// How long a key that went past its allowance stays blocked.
    public var blockFor: TimeAmount = .minutes(10)

    /// The documented defaults.
    public init() {}
}

/// Failed credentials as a signal: a login the origin refused, or an API key it did not know
/// (401/403, or a redirect to its error page), counts against the source address, its subnet and
/// its TLS fingerprint. Past an allowance the key is blocked for a while on login routes and for
/// requests with unknown keys (a spraying source is refused before the origin pays for another
/// password hash); members and configured keys are never asked.
///
/// Fixed-size tables (token buckets, set-associative) and a bounded block list; time passed in,
/// nanoseconds. One per site per event loop: allowances are split over the loops.
public struct CredentialFailures: Sendable {
    public let config: CredentialGuardConfig
    private var sources: TokenBucketTable
    private var subnets: TokenBucketTable
    private var fingerprints: TokenBucketTable
    private var blocked: BanList

    /// Tables for one of `loops` event loops.
    public init(config: CredentialGuardConfig, loops: Int, capacity: Int = 65_536) {
        self.config = config
        let l = max(1, loops)
        let window = max(1, Double(config.window.nanoseconds) / 1e9)
        func table(_ allowance: Int, _ capacity: Int) -> TokenBucketTable {
            let burst = max(1, Double(allowance) / Double(l))
            return TokenBucketTable(capacity: capacity, ratePerSecond: burst / window, burst: burst)
        }
        sources = table(config.perSource, capacity)
        subnets = table(config.perSubnet, capacity / 4)
        fingerprints = table(config.perFingerprint, 4096)
        var policy = BanPolicy()
        policy.duration = config.blockFor
        policy.maxDuration = config.blockFor
        policy.capacity = capacity
        blocked = BanList(policy: policy)
    }

    /// The block-list keys of a client: its address, its subnet, its fingerprint.
    static func subnetKey(_ client: IPAddress) -> IPAddress {
        // Tagged, so a subnet's key is never the address of its own first host.
        let subnet = client.defaultSubnet
        return IPAddress(high: subnet.high ^ 0x5EB7_0000_0000_0000, low: subnet.low)
    }
    static func fingerprintKey(_ fingerprint: String) -> IPAddress { IPAddress.bucketKey("ja4 " + fingerprint) }

    /// True when the client's address, subnet or fingerprint went past its allowance recently.
    public func isBlocked(client: IPAddress, fingerprint: String?, now: Int64) -> Bool {
        if blocked.isBanned(client, now: now) || blocked.isBanned(Self.subnetKey(client), now: now) { return true }
        if let fingerprint, blocked.isBanned(Self.fingerprintKey(fingerprint), now: now) { return true }
        return false
    }

    /// The origin refused the client's credentials. Returns what this failure blocked (nil:
    /// nothing new).
    @discardableResult
    public mutating func failed(client: IPAddress, fingerprint: String?, now: Int64) -> Scope? {
        var newly: Scope?
        if case .limited = sources.take(client, now: now), !blocked.isBanned(client, now: now) {
            blocked.ban(client, now: now)
            newly = .source
        }
        let subnet = Self.subnetKey(client)
        if case .limited = subnets.take(subnet, now: now), !blocked.isBanned(subnet, now: now) {
            blocked.ban(subnet, now: now)
            newly = .subnet
        }
        if let fingerprint {
            let key = Self.fingerprintKey(fingerprint)
            if case .limited = fingerprints.take(key, now: now), !blocked.isBanned(key, now: now) {
                blocked.ban(key, now: now)
                newly = .fingerprint
            }
        }
        return newly
    }

    /// What a block covers.
    public enum Scope: String, Sendable, Equatable {
        case source, subnet, fingerprint
    }

    /// True when a request with this method and (normalised) path is a login attempt.
    public static func isLogin(method: HTTPMethod, path: Substring, config: CredentialGuardConfig) -> Bool {
        guard method == .POST else { return false }
        for route in config.loginRoutes where ChallengePolicy.matchesSegments(path, route) { return true }
        return false
    }

    /// True when the origin's answer says the credentials were wrong.
    public static func isFailure(status: Int, location: String?, config: CredentialGuardConfig) -> Bool {
        if config.failureStatus.contains(status) { return true }
        if (300..<400).contains(status), let marker = config.failureLocation, let location, location.contains(marker) { return true }
        return false
    }
}
