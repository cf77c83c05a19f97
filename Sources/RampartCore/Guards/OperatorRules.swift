/// Rules an operator adds while Rampart runs (`POST /api/rules`, `rampart rules add`), beside the
/// config file's: allow a block (priority in origin queues, like `known_good.allow`) or deny it
/// (refused with 403 at the access rules phase). A fleet shares them (docs/fleet.md).

/// One runtime rule.
public struct OperatorRule: Sendable, Hashable, Codable {
    /// What a matching client meets.
    public enum Action: String, Sendable, Hashable, Codable {
        /// Priority in origin queues, as a known-good client.
        case allow
        /// Refused with 403 before rate limits and challenges.
        case deny
    }

    /// Unique in the fleet: made by the node that added the rule.
    public var id: String
    public var action: Action
    /// The block, `a.b.c.d/n`, `v6/n` or one address.
    public var cidr: String
    /// The site it applies to; nil: every site.
    public var site: String?
    /// Unix seconds when it ends; 0: until removed.
    public var until: Int64
    /// Why (shown to operators, never to clients).
    public var reason: String
    /// Who added it (`operator`, or the node it came from).
    public var by: String
    /// Unix seconds when it was decided (the later decision on one id wins).
    public var decided: Int64

    /// A rule as given; ``block`` is nil when `cidr` does not parse.
    public init(id: String, action: Action, cidr: String, site: String?, until: Int64, reason: String, by: String, decided: Int64) {
        self.id = id
        self.action = action
        self.cidr = cidr
        self.site = site
        self.until = until
        self.reason = reason
        self.by = by
        self.decided = decided
    }

    /// The parsed block.
    public var block: CIDR? { CIDR(cidr) }

    /// True while in force at `now` (Unix seconds).
    public func inForce(at now: Int64) -> Bool { until == 0 || until > now }

    /// Most runtime rules a gateway keeps: matching is linear, and a long list belongs in the
    /// config file (or in bans, which are hashed).
    public static let capacity = 1000
}

/// The runtime rules compiled for one event loop: checked per request only when not empty.
public struct OperatorRuleSet: Sendable {
    private struct Entry: Sendable {
        var block: CIDR
        var site: String?
        var until: Int64
    }

    private var deny: [Entry] = []
    private var allow: [Entry] = []

    /// No rules.
    public init() {}

    /// The set for `rules` (unparsable blocks are skipped).
    public init(_ rules: [OperatorRule]) {
        for rule in rules {
            guard let block = rule.block else { continue }
            let entry = Entry(block: block, site: rule.site, until: rule.until)
            switch rule.action {
            case .deny: deny.append(entry)
            case .allow: allow.append(entry)
            }
        }
    }

    /// True when no rule is kept.
    public var isEmpty: Bool { deny.isEmpty && allow.isEmpty }

    /// True when a deny rule in force at `now` (Unix seconds) matches `client` on `site`.
    public func denies(_ client: IPAddress, site: String, now: Int64) -> Bool {
        Self.matches(deny, client, site: site, now: now)
    }

    /// True when an allow rule in force at `now` matches `client` on `site` (nil: any site).
    public func allows(_ client: IPAddress, site: String?, now: Int64) -> Bool {
        Self.matches(allow, client, site: site, now: now)
    }

    private static func matches(_ entries: [Entry], _ client: IPAddress, site: String?, now: Int64) -> Bool {
        for e in entries where (e.site == nil || site == nil || e.site == site) && (e.until == 0 || e.until > now) && e.block.contains(client) {
            return true
        }
        return false
    }
}
