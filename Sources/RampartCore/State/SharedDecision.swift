/// A decision made on this node that a fleet shares (docs/fleet.md), and the same shape coming
/// back from other nodes. Times are Unix seconds, so nodes with different uptimes agree.
public enum SharedDecision: Sendable, Hashable, Codable {
    /// `address` refused until `until` (Unix seconds); `by` is the operator or node that decided.
    case ban(address: String, until: Int64, reason: String, by: String)
    /// The ban of `address` lifted (a tombstone: later bans of it still apply).
    case unban(address: String, by: String)
    /// An operator's mode for `site` (`normal`, `elevated`, `under_attack`), or `auto` to return it
    /// to automatic mode.
    case mode(site: String, mode: String, by: String)
    /// Clearance `clearance` (its random id) of `site` refused until `until`, when it would have
    /// expired anyway.
    case revoke(site: String, clearance: UInt64, until: Int64, by: String)
    /// An operator's runtime rule added or replaced (``OperatorRule``; its id keys it).
    case rule(OperatorRule)
    /// The runtime rule `id` removed.
    case unrule(id: String, by: String)

    /// What the decision is about: an address, or a site.
    public var subject: String {
        switch self {
        case .ban(let a, _, _, _), .unban(let a, _): a
        case .mode(let site, _, _): site
        case .revoke(let site, let clearance, _, _): "\(site)/\(clearance)"
        case .rule(let rule): rule.id
        case .unrule(let id, _): id
        }
    }

    /// True for bans and unbans (keyed by address), false for the rest.
    public var isBan: Bool {
        switch self {
        case .ban, .unban: true
        case .mode, .revoke, .rule, .unrule: false
        }
    }
}
