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

    /// What the decision is about: an address, or a site.
    public var subject: String {
        switch self {
        case .ban(let a, _, _, _), .unban(let a, _): a
        case .mode(let site, _, _): site
        }
    }

    /// True for bans and unbans (keyed by address), false for modes (keyed by site).
    public var isBan: Bool {
        if case .mode = self { return false }
        return true
    }
}
