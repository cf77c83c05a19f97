/// A ban or unban decided on this node, as a fleet shares it (docs/fleet.md), and the same shape
/// coming back from other nodes. Times are Unix seconds, so nodes with different uptimes agree.
public enum BanDecision: Sendable, Hashable, Codable {
    /// `address` refused until `until` (Unix seconds); `by` is the operator or node that decided.
    case ban(address: String, until: Int64, reason: String, by: String)
    /// The ban of `address` lifted (a tombstone: later bans of it still apply).
    case unban(address: String, by: String)

    /// The address the decision is about.
    public var address: String {
        switch self {
        case .ban(let a, _, _, _), .unban(let a, _): a
        }
    }
}
