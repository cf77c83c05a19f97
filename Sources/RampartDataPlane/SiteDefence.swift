import NIOCore
import NIOHTTP1
import RampartCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One site's detection and challenge state on one event loop: the mode the detector published,
/// this second's traffic summary, and the fixed-size tables behind clearances. Loop-confined.
final class SiteDefence {
    let name: String
    private(set) var config: ChallengeConfig
    /// Failed logins and unknown API keys per source, subnet and fingerprint.
    var credentialFailures: CredentialFailures
    /// Published by the detection service.
    var mode = SiteMode.normal
    var tier = ChallengeTier.cookie
    /// This second's traffic, taken by the detection service once a second.
    var traffic = TrafficSecond()
    /// Per-clearance token buckets (a clearance is one person's share).
    var clearanceBuckets: TokenBucketTable
    /// Second-level buckets of clearances over their limit: a clearance that keeps tripping it is revoked.
    var clearanceAbuse: TokenBucketTable
    /// No-JavaScript tickets redeemed, per subnet.
    var waitBuckets: TokenBucketTable
    /// Requests without clearance per source while challenging: a source that keeps coming back
    /// without the cookie it was given keeps no cookies.
    var cookieless: TokenBucketTable
    /// How each client (by clearance, else address) and each group (subnet, request fingerprint)
    /// browses (assets, referrers, searches): suspects are challenged harder under attack.
    var behaviour = BehaviourScore()
    /// Revoked clearances (by clearance key), until they would have expired anyway.
    var revoked: BanList
    /// Per-credential buckets: a session the origin vouches for is one person's share too, so a
    /// stolen session cookie cannot carry a flood past the challenges.
    var credentialBuckets: TokenBucketTable
    /// Names of cookies the origin sets (learned from its `Set-Cookie`), at most `maxLearned`:
    /// held by a client the origin keeps answering well, such a cookie vouches for it.
    private(set) var learnedCookies: [String] = []
    static let maxLearned = 8
    private var sampleCounter = 0
    private let loops: Int

    init(site: SiteConfig, loops: Int) {
        name = site.name
        config = site.challenge
        self.loops = loops
        credentialFailures = CredentialFailures(config: site.credentials, loops: loops)
        let l = Double(max(1, loops))
        clearanceBuckets = TokenBucketTable(capacity: 65_536, ratePerSecond: site.challenge.clearanceRate / l, burst: max(10, site.challenge.clearanceBurst / l))
        clearanceAbuse = TokenBucketTable(capacity: 4096, ratePerSecond: 1, burst: 20)
        waitBuckets = TokenBucketTable(capacity: 16_384, ratePerSecond: site.challenge.waitRate / l, burst: max(2, site.challenge.waitBurst / l))
        cookieless = TokenBucketTable(capacity: 65_536, ratePerSecond: 0.2, burst: 6)
        credentialBuckets = TokenBucketTable(capacity: 65_536, ratePerSecond: site.challenge.clearanceRate / l, burst: max(10, site.challenge.clearanceBurst / l))
        var policy = BanPolicy()
        policy.duration = site.challenge.clearanceTTL
        policy.maxDuration = site.challenge.clearanceTTL
        policy.capacity = 16_384
        revoked = BanList(policy: policy)
    }

    /// Counts a routed request for detection: sources, targets and (sampled) paths and agents.
    func record(client: IPAddress, method: HTTPMethod, target: String, headers: HTTPHeaders, fingerprint: String?) {
        traffic.requests += 1
        if method != .GET && method != .HEAD { traffic.nonGet += 1 }
        traffic.sources.add(hash: mix64(client.high ^ mix64(client.low)))
        traffic.targets.add(hash: hashBytes(target.utf8))
        traffic.topSources.add(client)
        traffic.topSubnets.add(client.defaultSubnet)
        sampleCounter &+= 1
        if sampleCounter & 7 == 0 {
            // One request in eight: the heavy hitters stand out just the same, at an eighth of the cost.
            let path = target.firstIndex(of: "?").map { String(target[..<$0]) } ?? target
            traffic.topPaths.add(path.utf8.count <= 200 ? path : String(path.prefix(200)), weight: 8)
            let agent = headers.first(name: "user-agent") ?? ""
            traffic.topAgents.add(agent.utf8.count <= 200 ? agent : String(agent.prefix(200)), weight: 8)
            if let fingerprint { traffic.topFingerprints.add(fingerprint, weight: 8) }
        }
    }

    /// Counts a request of `client` the defence refused (for the incident's indicators).
    func recordRefused(_ client: IPAddress) {
        traffic.refusedSources.add(client)
        traffic.refusedSubnets.add(client.defaultSubnet)
    }

    /// Counts where a routed request came from (country and network), in the same one-in-eight
    /// sample as paths and agents. Only with geolocation configured.
    func recordPlace(country: String?, asn: UInt32?) {
        guard sampleCounter & 7 == 0 else { return }
        if let country { traffic.topCountries.add(country, weight: 8) }
        if let asn { traffic.topNetworks.add("AS\(asn)", weight: 8) }
    }

    /// Hands this second's summary over and starts a new one.
    func takeTraffic() -> TrafficSecond {
        let t = traffic
        traffic = TrafficSecond()
        return t
    }

    /// A request without clearance from `client`: true when it keeps coming back without the
    /// cookie it was given (its bucket ran dry).
    func keepsNoCookies(_ client: IPAddress, now: Int64) -> Bool {
        if case .limited = cookieless.take(client, now: now) { return true }
        return false
    }

    /// Takes a token from a clearance's bucket; true when over its limit.
    func clearanceOverLimit(_ key: IPAddress, now: Int64) -> (limited: Bool, revoke: Bool) {
        guard case .limited = clearanceBuckets.take(key, now: now) else { return (false, false) }
        if case .limited = clearanceAbuse.take(key, now: now) {
            _ = revoked.ban(key, now: now)
            return (true, true)
        }
        return (true, false)
    }

    /// Learns the cookie names in an origin's successful response.
    func learnCookies(from headers: HTTPHeaders) {
        guard learnedCookies.count < Self.maxLearned else { return }
        for value in headers[canonicalForm: "set-cookie"] {
            guard let eq = value.firstIndex(of: "="), eq > value.startIndex else { continue }
            let name = String(value[..<eq].filter { $0 != " " && $0 != "\t" })
            guard name != ChallengeRoutes.cookie, name.utf8.count <= 64, !learnedCookies.contains(name) else { continue }
            learnedCookies.append(name)
            if learnedCookies.count >= Self.maxLearned { return }
        }
    }

    /// Keeps state across a reload; tables are rebuilt only when the challenge settings changed.
    func update(site: SiteConfig) -> SiteDefence {
        if site.credentials != credentialFailures.config {
            credentialFailures = CredentialFailures(config: site.credentials, loops: loops)
        }
        guard site.challenge != config else { return self }
        let fresh = SiteDefence(site: site, loops: loops)
        fresh.mode = mode
        fresh.tier = tier
        fresh.traffic = traffic
        fresh.revoked = revoked
        fresh.behaviour = behaviour
        fresh.learnedCookies = learnedCookies
        fresh.credentialFailures = credentialFailures
        return fresh
    }

    /// `Set-Cookie` value for a clearance.
    func cookie(_ clearance: Clearance, keys: inout SigningKeys, userAgent: String, now: Int64, secure: Bool) -> String {
        let value = clearance.encode(keys: &keys, userAgent: userAgent, now: now)
        let ttl = max(0, clearance.expires - now)
        return "\(ChallengeRoutes.cookie)=\(value); Path=/; Max-Age=\(ttl); HttpOnly; SameSite=Lax\(secure ? "; Secure" : "")"
    }
}

/// Wall-clock Unix seconds (clearances and tickets carry absolute times).
func unixNow() -> Int64 { Int64(time(nil)) }

@available(*, unavailable)
extension SiteDefence: Sendable {}
