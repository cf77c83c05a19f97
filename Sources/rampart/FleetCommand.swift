import ArgumentParser
import Foundation
import Logging
import NIOCore
import RampartAdmin
import RampartCore
import RampartDataPlane
import RampartFleet

/// Makes this gateway a fleet node when the config has `fleet:` (nil otherwise: no database
/// connection is ever attempted). The node starts following the fleet with ``startFleet(_:)``.
func makeFleetNode(_ config: GatewayConfig, gateway: Gateway, addresses: [SocketAddress], logger: Logger) throws -> FleetNode? {
    guard let fleet = config.fleet else { return nil }
    let listening = zip(config.listeners, addresses).map { "\(HostPort(host: $0.0.address.host, port: $0.1.port ?? $0.0.address.port))" }
    let sender = config.alertWebhooks.isEmpty ? nil : WebhookSender(urls: config.alertWebhooks, logger: logger)
    let node = try FleetNode(
        config: fleet, gateway: gateway, stateFolder: config.statePath, address: listening.joined(separator: ","), logger: logger
    ) { connected in
        sender?.send(.fleet(connected: connected, node: fleet.node, reason: connected ? "" : "the database is unreachable"))
    }
    logger.notice("fleet node", metadata: ["node": "\(fleet.node)", "database": "\(fleet.description)"])
    return node
}

/// The signing key a fleet node uses: the fleet's (kept in the state folder too, for starts without
/// the database), or its own when the database cannot be reached (see ``FleetSigningKey``). A key
/// `madeNow` (first start) never replaces the fleet's; one rotated since the fleet's was stored does.
func fleetSigningSecret(_ fleet: FleetConfig, local: [UInt8], madeNow: Bool, folder: String, logger: Logger) async -> [UInt8] {
    let path = (folder as NSString).appendingPathComponent(signingKeyFileName)
    let modified = ((try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date).map { Int64($0.timeIntervalSince1970) } ?? 0
    let changed = madeNow ? 0 : modified
    guard let shared = await FleetSigningKey.agree(config: fleet, local: local, localChanged: changed, logger: logger), shared != local else { return local }
    guard shared.count >= 16 else { return local }
    do {
        try SecretFile.replace(at: path, with: shared)
        // The file now holds the fleet's key: dated like it, so it does not count as a rotation.
        try? FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSince1970: 0)], ofItemAtPath: path)
    } catch {
        logger.warning("cannot keep the fleet's signing key in the state folder; it is used until the next start", metadata: ["path": "\(path)", "error": "\(error)"])
    }
    logger.notice("clearance signing key taken from the fleet", metadata: ["node": "\(fleet.node)"])
    return shared
}

/// The JSON `GET /api/fleet` serves.
func fleetStatusJSON(_ node: FleetNode) -> @Sendable () -> [UInt8] {
    {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return Array((try? encoder.encode(node.status)) ?? Data("{}".utf8))
    }
}

struct Fleet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The fleet a running gateway belongs to.",
        subcommands: [Status.self]
    )

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every node of the fleet: heartbeat, lag, outbox, rate, and its last second per site.")
        @OptionGroup var options: AdminOptions
        @Flag(name: .long, help: "Print the JSON the admin API returns.") var json = false

        func run() async throws {
            let (status, data) = try await options.call("GET", "/api/fleet")
            guard status == 200, let s = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ValidationError("unexpected answer from \(options.admin): HTTP \(status)")
            }
            guard s["enabled"] as? Bool == true else { throw ValidationError("the gateway at \(options.admin) is not in a fleet (no fleet: in its config, no --fleet)") }
            if json {
                print(String(decoding: data, as: UTF8.self))
                return
            }
            let connected = s["connected"] as? Bool ?? false
            print("node \(s["node"] as? String ?? "?") · \(s["database"] as? String ?? "")")
            print(connected ? "connected · sync lag \(String(format: "%.1f", s["sync_lag_seconds"] as? Double ?? 0)) s" : "DEGRADED: database unreachable (\(s["last_error"] as? String ?? "")); serving on the last shared state")
            print("outbox \(s["outbox"] as? Int ?? 0) decision(s) waiting, \(s["outbox_dropped"] as? Int ?? 0) dropped")
            print("")
            print("NODE                 ADDRESS                      HEARTBEAT  LAG (events)  OUTBOX  REQ/S")
            let now = Int(Date().timeIntervalSince1970)
            for n in s["nodes"] as? [[String: Any]] ?? [] {
                let age = now - (n["heartbeat"] as? Int ?? 0)
                print("\(pad(n["name"] as? String ?? "", 20)) \(pad(n["address"] as? String ?? "", 28)) \(lpad("\(age) s ago", 9))  \(lpad(String(n["lag_events"] as? Int ?? 0), 12))  \(lpad(String(n["outbox"] as? Int ?? 0), 6))  \(lpad(String(format: "%.0f", n["requests_per_second"] as? Double ?? 0), 5))")
                // Its last second per site, and the mode its detection raised there and renews.
                for site in n["sites"] as? [[String: Any]] ?? [] {
                    let raised = (site["raised_mode"] as? String).map { " · raised \($0) (\(site["raised_tier"] as? String ?? ""))" } ?? ""
                    print("  site \(site["site"] as? String ?? "?"): \(site["requests"] as? Int ?? 0) req/s, \(site["to_origin"] as? Int ?? 0) to origin, \(site["cache_served"] as? Int ?? 0) cached, \(site["challenged"] as? Int ?? 0) challenged, \(site["limited"] as? Int ?? 0) limited\(raised)")
                }
            }
        }
    }
}
