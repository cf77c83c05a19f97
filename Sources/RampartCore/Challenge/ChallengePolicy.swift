import NIOCore
import NIOHTTP1

/// A site's challenge settings (`challenge:` in the config).
public struct ChallengeConfig: Hashable, Sendable {
    /// False: the site is never challenged (modes still change, limits still apply).
    public var enabled = true
    /// Tier forced for the site; nil lets the detector choose (cookie check first, proof of work
    /// once the attack is seen to keep cookies).
    public var tier: ChallengeTier? = nil
    /// Proof-of-work difficulty in leading zero bits of SHA-256 (16: about 65,000 hashes, well
    /// under a second in a phone's browser).
    public var difficulty = 16
    /// How long a clearance cookie lasts.
    public var clearanceTTL: TimeAmount = .hours(1)
    /// Requests per second one clearance may make (sustained) and its burst: one person's share.
    public var clearanceRate: Double = 20
    public var clearanceBurst: Double = 200
    /// Seconds a client without JavaScript waits before it is let in.
    public var waitSeconds = 5
    /// Wait tickets redeemed per second per subnet (/24, /64), and their burst.
    public var waitRate: Double = 2
    public var waitBurst: Double = 30
    /// Paths that are never challenged (machine routes: APIs, feeds, health checks), matched on
    /// whole segments of the normalised path: `/health` exempts `/health` and `/health/live`, not
    /// `/healthcare`; an entry ending in `/` exempts what is under it. They are rate-limited like
    /// everything else.
    public var exemptPaths: [String] = [
        "/api/", "/.well-known/", "/healthz", "/health", "/robots.txt", "/feed", "/rss", "/sitemap.xml", "/feed.xml",
        "/rss.xml", "/atom.xml",
    ]
    /// Requests that carry one of the site's configured API keys are not challenged: API software
    /// cannot solve one. Unknown keys and bearer tokens earn nothing (a flood would only need to
    /// add one); tokens the origin has accepted pass as sessions do, at one person's rate. Keys are
    /// still rate-limited per key.
    public var exemptKeyHolders = true
    /// User-agent fragments (lower case) that mark a tool rather than a browser: such clients
    /// without clearance are challenged already in elevated mode.
    public var suspiciousAgents: [String] = [
        "headless", "python", "curl/", "wget/", "go-http-client", "java/", "libwww", "okhttp", "httpclient",
        "scrapy", "phantomjs", "node-fetch", "axios/", "aiohttp",
    ]

    /// The documented defaults.
    public init() {}
}

/// What the challenge stage does with one request.
public enum ChallengeAction: Equatable, Sendable {
    /// On to the cache and the origin.
    case pass
    /// Answer with a challenge of this tier.
    case challenge(ChallengeTier)
    /// A request that cannot follow a challenge (POST and other non-idempotent methods) without
    /// clearance while the site is under attack: 429 with Retry-After.
    case refuse
}

/// Who is challenged: nobody in normal mode; in elevated mode clients without clearance that
/// behave like tools; under attack every client without clearance on challengeable routes. Never
/// exempt paths, key holders, allow-listed or known-good clients.
public enum ChallengePolicy {
    /// True when the (normalised) `path` is one of the exempt paths or lies under one, on whole
    /// segments, or is one of the gateway's own routes.
    public static func isExempt(path: Substring, config: ChallengeConfig) -> Bool {
        for prefix in config.exemptPaths where matchesSegments(path, prefix) { return true }
        return path.hasPrefix(ChallengeRoutes.prefix)
    }

    /// `path` equals `prefix`, or continues it after a `/` (a prefix ending in `/` matches what
    /// is under it).
    static func matchesSegments(_ path: Substring, _ prefix: String) -> Bool {
        guard path.hasPrefix(prefix) else { return false }
        if prefix.hasSuffix("/") || path.utf8.count == prefix.utf8.count { return true }
        return path.utf8[path.utf8.index(path.utf8.startIndex, offsetBy: prefix.utf8.count)] == UInt8(ascii: "/")
    }

    /// True when the user agent is missing or names a tool or a headless browser.
    public static func isSuspiciousAgent(_ agent: String?, config: ChallengeConfig) -> Bool {
        guard let agent, !agent.isEmpty else { return true }
        let lower = agent.lowercased()
        return config.suspiciousAgents.contains { lower.contains($0) }
    }

    /// The decision for one request. `exempt` covers the caller's identity checks (API key,
    /// allow-list, known-good); `clearance` is the level of a valid clearance cookie, if any;
    /// `suspicious` whether the client behaves like a tool (agent, no cookies kept).
    public static func decide(
        mode: SiteMode, tier: ChallengeTier, method: HTTPMethodName, exemptRoute: Bool, exempt: Bool,
        clearance: Clearance.Level?, suspicious: Bool
    ) -> ChallengeAction {
        guard mode != .normal, !exemptRoute, !exempt else { return .pass }
        if method != .get {
            // Any clearance will do: the page that led to the form handed one out, and the
            // clearance's own rate limit caps what one holder can send.
            if clearance != nil || mode != .underAttack { return .pass }
            return .refuse
        }
        if let clearance, clearance.satisfies(tier) { return .pass }
        switch mode {
        case .normal: return .pass
        case .elevated: return clearance == nil && suspicious ? .challenge(.cookie) : .pass
        case .underAttack: return .challenge(tier)
        }
    }
}

/// The method classes the challenge stage tells apart.
public enum HTTPMethodName: Sendable, Equatable {
    /// GET and HEAD: a challenge page or redirect can be followed.
    case get
    /// Everything else.
    case other
}

/// The gateway's own routes for challenge answers (never forwarded).
public enum ChallengeRoutes {
    public static let prefix = "/.rampart/"
    /// Proof-of-work answers: `?c=CHALLENGE&a=ANSWER&r=RETURN`.
    public static let pow = "/.rampart/pow"
    /// No-JavaScript tickets: `?t=TICKET&r=RETURN`.
    public static let wait = "/.rampart/wait"
    /// Name of the clearance cookie.
    public static let cookie = "__rampart"

    /// The value of query parameter `name` in `target`, percent-decoded.
    public static func parameter(_ name: String, in target: Substring) -> Substring? {
        guard let q = target.firstIndex(of: "?") else { return nil }
        for pair in target[target.index(after: q)...].split(separator: "&") {
            guard let eq = pair.firstIndex(of: "="), pair[..<eq] == name else { continue }
            return PercentCoding.decode(pair[pair.index(after: eq)...])
        }
        return nil
    }

    /// A safe place to return to: a path on this site (starts with one `/`), else `/`.
    public static func safeReturn(_ candidate: Substring?) -> String {
        guard let c = candidate, c.hasPrefix("/"), !c.hasPrefix("//"), !c.hasPrefix("/\\"), c.utf8.count <= 4096,
            !c.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F })
        else { return "/" }
        return String(c)
    }

    /// Removes the gateway's own cookies (the clearance and the session companion,
    /// ``SessionBinding``) from `Cookie` headers before a request goes on: the origin has no use
    /// for them, and a request that carries no other cookie stays cacheable.
    public static func stripClearanceCookie(_ headers: inout HTTPHeaders) {
        let values = headers["cookie"]
        guard values.contains(where: { $0.contains(cookie) }) else { return }
        headers.remove(name: "cookie")
        for value in values {
            let kept = value.split(separator: ";").filter { part in
                let p = part.drop(while: { $0 == " " })
                let name = p.firstIndex(of: "=").map { p[..<$0] } ?? p
                return name != cookie && name != SessionBinding.cookie
            }
            if !kept.isEmpty { headers.add(name: "Cookie", value: kept.map { $0.drop(while: { $0 == " " }) }.joined(separator: "; ")) }
        }
    }

    /// The value of cookie `name` in the request's Cookie headers.
    public static func cookie(_ name: String, in cookieHeaders: [String]) -> Substring? {
        for header in cookieHeaders {
            for part in header.split(separator: ";") {
                let p = part.drop(while: { $0 == " " })
                guard p.hasPrefix(name), p.dropFirst(name.count).first == "=" else { continue }
                return p.dropFirst(name.count + 1)
            }
        }
        return nil
    }
}

/// Percent-encoding for query values (RFC 3986 unreserved characters kept).
public enum PercentCoding {
    public static func encode(_ s: String) -> String {
        var out = [UInt8]()
        let hex = Array("0123456789ABCDEF".utf8)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"):
                out.append(b)
            default:
                out += [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ s: Substring) -> Substring {
        guard s.utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) else { return s }
        var out = [UInt8]()
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            if b == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
            } else if b == UInt8(ascii: "%"), it.count >= 2, let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) {
                out.append(v)
                it = it.dropFirst(2)
            } else {
                out.append(b)
            }
        }
        return Substring(String(decoding: out, as: UTF8.self))
    }
}
