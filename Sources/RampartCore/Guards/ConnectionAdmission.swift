/// Connection admission for one listener: a cap on open connections and on concurrent connections
/// per client address. Confined to one event loop by its owner (no locks).
///
/// Memory is bounded by the connection cap: an address has an entry only while it holds at least one
/// open connection, so the table never holds more than `maxConnections` entries.
public struct ConnectionAdmission: Sendable {
    /// Most open connections.
    public var maxConnections: Int
    /// Most open connections from one address.
    public var maxPerAddress: Int
    /// Open connections now.
    public private(set) var open = 0
    private var perAddress: [IPAddress: Int] = [:]

    /// An empty table with the given caps.
    public init(maxConnections: Int, maxPerAddress: Int) {
        self.maxConnections = maxConnections
        self.maxPerAddress = maxPerAddress
    }

    /// Admits a connection from `address`, or says why not. On success the caller must call
    /// ``release(_:)`` exactly once when the connection closes.
    public mutating func admit(_ address: IPAddress) -> RejectReason? {
        if open >= maxConnections { return .maxConnections }
        let current = perAddress[address, default: 0]
        if current >= maxPerAddress { return .maxConnectionsPerIP }
        perAddress[address] = current + 1
        open += 1
        return nil
    }

    /// Releases a connection admitted for `address`.
    public mutating func release(_ address: IPAddress) {
        guard let current = perAddress[address] else { return }
        if current <= 1 { perAddress.removeValue(forKey: address) } else { perAddress[address] = current - 1 }
        open -= 1
    }

    /// Open connections from `address`.
    public func connections(from address: IPAddress) -> Int { perAddress[address, default: 0] }

    /// Number of distinct addresses with open connections (never above `maxConnections`).
    public var distinctAddresses: Int { perAddress.count }
}
