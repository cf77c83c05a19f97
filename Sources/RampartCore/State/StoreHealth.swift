/// How a store's writes go, for the log, `/metrics` and the dashboard: a gateway whose disk is full
/// or whose state folder turned read-only keeps serving, and says so.
public struct StoreHealth: Sendable, Equatable, Codable {
    /// False while writes fail (they wait and are tried again).
    public var writable: Bool
    /// Writes that failed since start (each retry that fails counts).
    public var failedWrites: Int
    /// Distinct rows (a ban, an incident, a site's mode) waiting to be written.
    public var pendingWrites: Int
    /// Rows given up because too many were waiting (the in-memory state still has them).
    public var droppedWrites: Int
    /// The last error, as the database said it.
    public var lastError: String?

    public init(writable: Bool = true, failedWrites: Int = 0, pendingWrites: Int = 0, droppedWrites: Int = 0, lastError: String? = nil) {
        self.writable = writable
        self.failedWrites = failedWrites
        self.pendingWrites = pendingWrites
        self.droppedWrites = droppedWrites
        self.lastError = lastError
    }
}

/// A store that can say how its writes go.
public protocol StoreHealthReporting: Sendable {
    /// The current figures; cheap, never waits for the disk.
    var health: StoreHealth { get }
}
