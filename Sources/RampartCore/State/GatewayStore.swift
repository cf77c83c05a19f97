/// What the gateway keeps across restarts, as the data plane sees it: small protocols, so the data
/// plane depends on no database module. `StateStore` (SQLite, in RampartState) implements them;
/// writes are queued off the event loops, reads happen at start.

/// A ban as stored: who, until when (Unix seconds), how many times before, and why.
public struct BanRecord: Sendable, Equatable, Codable {
    public var address: String
    /// Unix seconds when the ban ends.
    public var until: Int64
    /// Repeat count (each repeat doubles the length).
    public var level: Int
    public var reason: String
    /// Unix seconds when it was issued.
    public var created: Int64

    public init(address: String, until: Int64, level: Int, reason: String, created: Int64) {
        self.address = address
        self.until = until
        self.level = level
        self.reason = reason
        self.created = created
    }
}

/// Bans in force, so they survive a restart.
public protocol BanStore: AnyObject, Sendable {
    /// Stores (or replaces) the ban of `ban.address`; never blocks the caller on the disk.
    func saveBan(_ ban: BanRecord)
    /// Forgets the ban of `address`.
    func removeBan(address: String)
    /// The bans still in force at `now` (Unix seconds).
    func activeBans(now: Int64) throws -> [BanRecord]
}

/// Incidents, open ones updated as they go.
public protocol IncidentStore: AnyObject, Sendable {
    /// Stores an incident (the last write wins); never blocks the caller on the disk.
    func saveIncident(_ incident: Incident)
    /// The most recent `limit` incidents, oldest first.
    func incidents(limit: Int) throws -> [Incident]
    /// Incident `id` as stored (with its series and events), nil when there is none.
    func incident(id: Int) throws -> Incident?
}

extension IncidentStore {
    /// Incident `id`, found among the stored ones (stores with an index do better).
    public func incident(id: Int) throws -> Incident? {
        try incidents(limit: Int.max).first { $0.id == id }
    }
}

/// Operators' mode overrides set through the admin API.
public protocol ModeOverrideStore: AnyObject, Sendable {
    func saveModeOverride(site: String, mode: SiteMode, at now: Int64)
    func removeModeOverride(site: String)
    func modeOverrides() throws -> [String: SiteMode]
}

/// Operators' runtime rules (`POST /api/rules`), kept across restarts.
public protocol RuleStore: AnyObject, Sendable {
    /// Replaces the stored rules with `rules` (the whole set: at most ``OperatorRule/capacity``).
    func saveRules(_ rules: [OperatorRule])
    /// The stored rules (ended ones included; the caller drops them).
    func storedRules() throws -> [OperatorRule]
}

/// Everything a gateway stores.
public typealias GatewayStore = BanStore & IncidentStore & ModeOverrideStore & RuleStore
