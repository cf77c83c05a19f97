import Foundation
import Logging
import NIOCore
import PostgresNIO
import RampartCore

/// The clearance signing key, shared by the fleet so a clearance issued by one node is honoured by
/// every node (docs/fleet.md).
///
/// At start, before the gateway takes traffic, a node agrees on the key with the database: the
/// first node to get there stores its key; a node whose own key is newer (`rampart keys rotate`
/// since the fleet's key was stored) replaces the fleet's; every other node takes the fleet's key
/// and keeps it in its state folder, so it still has it when it starts without the database. The
/// key is read at start only, as without a fleet: after a rotation, restart the nodes.
public enum FleetSigningKey {
    /// The key this node should use: the fleet's (after storing or replacing it as above), or nil
    /// when the database cannot be reached within `timeout` seconds (the node then starts with its
    /// own key and says so). `localChanged` is when the local key file last changed (Unix seconds).
    public static func agree(config: FleetConfig, local: [UInt8], localChanged: Int64, timeout: Double = 3, logger: Logger) async -> [UInt8]? {
        let quiet: Logger = {
            var l = logger
            l.logLevel = .critical
            return l
        }()
        do {
            return try await FleetNode.within(seconds: timeout) {
                let connection = try await PostgresConnection.connect(configuration: try FleetNode.connectionConfiguration(config), id: 0, logger: quiet)
                defer { Task { try? await connection.close() } }
                try await FleetSchema.migrate(connection, logger: quiet)
                var buffer = ByteBuffer(bytes: local)
                let rows = try await connection.query("""
                    INSERT INTO rampart_keys AS cur (id, secret, node, changed) VALUES (1, \(buffer), \(config.node), \(localChanged))
                    ON CONFLICT (id) DO UPDATE SET secret = EXCLUDED.secret, node = EXCLUDED.node, changed = EXCLUDED.changed
                    WHERE EXCLUDED.changed > cur.changed AND EXCLUDED.secret <> cur.secret
                    RETURNING id
                    """, logger: quiet)
                for try await _ in rows.decode(Int.self) {}
                for try await secret in try await connection.query("SELECT secret FROM rampart_keys WHERE id = 1", logger: quiet).decode(ByteBuffer.self) {
                    buffer = secret
                }
                return buffer.readBytes(length: buffer.readableBytes) ?? local
            }
        } catch {
            logger.warning("cannot agree on the signing key with the fleet; starting with this node's own key (clearances from other nodes may be challenged again)", metadata: ["error": "\(FleetNode.describe(error))"])
            return nil
        }
    }
}
