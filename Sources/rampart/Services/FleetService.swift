import Logging
import NIOConcurrencyHelpers
import NIOCore
import RampartCore
import RampartDataPlane
import RampartFleet
import ServiceLifecycle

/// The fleet node (`fleet:` or `--fleet`) as a service. It is made once the listeners are bound,
/// because it shows their addresses to the other nodes, and runs until the group shuts down: it
/// stops before the gateway drains (decisions made during the drain wait in the local outbox and
/// go out at the next start). Nothing on the request path waits for it or for the database.
struct FleetService: Service, CustomStringConvertible {
    /// The gateway's bound addresses, once (config order).
    let listening: AsyncStream<[SocketAddress]>
    /// Makes the node for those addresses.
    let make: @Sendable ([SocketAddress]) throws -> FleetNode
    /// Where the admin API finds the node for `GET /api/fleet`.
    let current: NIOLockedValueBox<FleetNode?>

    var description: String { "fleet" }

    func run() async throws {
        let listening = self.listening
        // The group may shut down before the listeners are up: then there is nothing to join.
        let bound: [SocketAddress]? = await cancelWhenGracefulShutdown {
            for await addresses in listening { return addresses }
            return nil
        }
        guard let bound else { return }
        let node: FleetNode
        do {
            node = try make(bound)
        } catch {
            throw LifecycleError(.fleet, error)
        }
        current.withLockedValue { $0 = node }
        await cancelWhenGracefulShutdown { await node.run() }
    }

    /// `GET /api/fleet` for the node in `current`: its status once it is made, and until then that
    /// the gateway is in a fleet it has not joined yet.
    static func statusJSON(_ current: NIOLockedValueBox<FleetNode?>, node name: String) -> @Sendable () -> [UInt8] {
        {
            guard let node = current.withLockedValue({ $0 }) else {
                return Array(#"{"enabled":true,"connected":false,"node":"\#(name)","state":"starting"}"#.utf8)
            }
            return fleetStatusJSON(node)()
        }
    }
}
