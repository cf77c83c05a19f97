import NIOCore
import Yams

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Decoding of `fleet:` (docs/fleet.md): the shared PostgreSQL database and this node's name.
extension ConfigReader {
    static let fleetKeys = [
        "url", "host", "port", "database", "user", "password_file", "password_env", "tls", "ca_file", "node",
        "poll_interval", "outbox_capacity", "retention_days", "mode_ttl", "traffic_interval",
    ]

    /// `fleet: {url | host, port, database, user; password_file | password_env; tls; ca_file; node;
    /// poll_interval; outbox_capacity; retention_days; mode_ttl; traffic_interval}`. Keys given beside `url` override its parts.
    func fleetConfig(_ node: Node, _ path: String) -> FleetConfig? {
        guard let f = fields(node, path, allowed: Self.fleetKeys) else { return nil }
        var config = FleetConfig(host: "", node: FleetConfig.defaultNodeName(hostName: Self.hostName()))
        if let (_, v) = f.first(where: { $0.0 == "url" }), let text = string(v, "\(path).url") {
            switch FleetConfig.parse(url: text, defaultNode: config.node) {
            case .success(let parsed):
                config = parsed
                if parsed.urlPassword != nil {
                    warn(v, "\(path).url", "the URL carries a password: anyone who can read this file can read it; use password_file or password_env")
                }
            case .failure(let error):
                report(v, "\(path).url", error.message)
                return nil
            }
        }
        for (k, v) in f {
            let p = "\(path).\(k)"
            switch k {
            case "host": if let s = string(v, p) { config.host = s }
            case "port": config.port = int(v, p, min: 1, max: 65535) ?? config.port
            case "database": if let s = string(v, p) { config.database = s }
            case "user": if let s = string(v, p) { config.user = s }
            case "password_file":
                guard let file = string(v, p) else { continue }
                if readTextFile(file) == nil { report(v, p, "cannot read '\(file)'") } else { config.passwordFile = file }
            case "password_env":
                guard let name = string(v, p) else { continue }
                if name.isEmpty || name.contains("=") { report(v, p, "expected the name of an environment variable") } else { config.passwordEnv = name }
            case "tls":
                guard let s = string(v, p) else { continue }
                guard let mode = FleetConfig.TLSMode(rawValue: s) else {
                    report(v, p, "expected one of \(FleetConfig.TLSMode.allCases.map(\.rawValue).joined(separator: ", "))")
                    continue
                }
                config.tls = mode
            case "ca_file":
                guard let file = string(v, p) else { continue }
                if readTextFile(file) == nil { report(v, p, "cannot read '\(file)'") } else { config.caFile = file }
            case "node":
                guard let s = string(v, p) else { continue }
                if FleetConfig.validNodeName(s) { config.node = s } else { report(v, p, FleetConfig.nodeNameRule) }
            case "poll_interval":
                if let d = duration(v, p, max: .seconds(60)) { config.pollInterval = Double(d.nanoseconds) / 1e9 }
            case "outbox_capacity": config.outboxCapacity = int(v, p, min: 10, max: 1_000_000) ?? config.outboxCapacity
            case "retention_days": config.retentionDays = int(v, p, min: 1, max: 3650) ?? config.retentionDays
            case "mode_ttl":
                if let d = duration(v, p, max: .hours(1)) {
                    if d < .seconds(1) { report(v, p, "must be at least 1s") } else { config.modeTTL = Double(d.nanoseconds) / 1e9 }
                }
            case "traffic_interval":
                if let d = duration(v, p, max: .seconds(1)) {
                    if d < .milliseconds(100) { report(v, p, "must be between 100ms and 1s") } else { config.trafficInterval = Double(d.nanoseconds) / 1e9 }
                }
            default: break
            }
        }
        if config.host.isEmpty { report(node, path, "give url (postgres://USER@HOST:PORT/DB) or host") }
        if config.passwordFile != nil, config.passwordEnv != nil {
            report(node, path, "give password_file or password_env, not both")
        }
        return config
    }

    /// This machine's host name ("" when it has none).
    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension FleetConfig {
    /// The config for `--fleet URL` (one-site mode), or why the URL is refused.
    public static func fromFlag(_ url: String) -> Result<FleetConfig, FleetConfigError> {
        parse(url: url, defaultNode: defaultNodeName(hostName: ConfigReader.hostName()))
    }
}
