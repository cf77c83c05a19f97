import NIOCore
import NIOHTTP1
import Yams

/// One problem found in a config file, with where it is.
public struct ConfigIssue: Hashable, Sendable, CustomStringConvertible {
    /// The file the problem is in.
    public var file: String
    /// 1-based line, or 0 when the problem is about the file as a whole.
    public var line: Int
    /// 1-based column, or 0.
    public var column: Int
    /// Dotted key path such as `sites[0].origins[1].address`.
    public var key: String
    /// What is wrong, and what would be right.
    public var message: String

    /// `file:line:column: key: message`, the shape compilers and `nginx -t` use.
    public var description: String {
        let place = line > 0 ? "\(file):\(line):\(column)" : file
        return key.isEmpty ? "\(place): \(message)" : "\(place): \(key): \(message)"
    }
}

/// Every problem found in one config file; thrown by ``ConfigLoader/load(yaml:file:)``.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    /// The problems, in file order.
    public var issues: [ConfigIssue]

    /// One issue per line.
    public var description: String { issues.map(\.description).joined(separator: "\n") }
}

/// A config that passed validation, with the warnings found on the way: settings that are valid but
/// weaken a defence (a PROXY listener that believes any peer, an identity header passed through).
/// `rampart check` prints them; they never stop the gateway.
package struct CheckedConfig: Sendable {
    /// The validated config.
    package var config: GatewayConfig
    /// Each with file, line and key, in file order.
    package var warnings: [ConfigIssue]
}

/// Decodes and validates the YAML config. Every problem in the file is collected before failing,
/// each with file, line, column and key, so `rampart check` shows them all at once.
public enum ConfigLoader {
    /// Decodes `yaml` (read from `file`, used in messages) into a validated config.
    public static func load(yaml: String, file: String) throws(ConfigError) -> GatewayConfig {
        try check(yaml: yaml, file: file).config
    }

    /// Decodes and validates `yaml` (read from `file`, used in messages); also returns the warnings.
    package static func check(yaml: String, file: String) throws(ConfigError) -> CheckedConfig {
        let reader = ConfigReader(file: file)
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigError(issues: [reader.issue(forYamlError: error)])
        } catch {
            throw ConfigError(issues: [ConfigIssue(file: file, line: 0, column: 0, key: "", message: "\(error)")])
        }
        guard let root else {
            throw ConfigError(issues: [ConfigIssue(file: file, line: 0, column: 0, key: "", message: "the file is empty")])
        }
        let config = reader.gateway(root)
        if !reader.issues.isEmpty { throw ConfigError(issues: reader.issues) }
        return CheckedConfig(config: config!, warnings: reader.warnings)
    }

    /// Reads and decodes the file at `path`.
    public static func load(path: String) throws(ConfigError) -> GatewayConfig {
        try check(path: path).config
    }

    /// Reads, decodes and validates the file at `path`; also returns the warnings.
    package static func check(path: String) throws(ConfigError) -> CheckedConfig {
        guard let text = readTextFile(path) else {
            throw ConfigError(issues: [ConfigIssue(file: path, line: 0, column: 0, key: "", message: "cannot read the file")])
        }
        return try check(yaml: text, file: path)
    }
}

/// Walks the YAML node tree, decoding known keys and recording issues for everything else.
final class ConfigReader {
    let file: String
    private(set) var issues: [ConfigIssue] = []
    /// Valid settings that weaken a defence; reported by `rampart check`, never fatal.
    private(set) var warnings: [ConfigIssue] = []

    init(file: String) { self.file = file }

    func issue(forYamlError error: YamlError) -> ConfigIssue {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
            return ConfigIssue(file: file, line: mark.line, column: mark.column, key: "", message: "YAML syntax: \(problem)")
        case .composer(_, let problem, let mark, _):
            return ConfigIssue(file: file, line: mark.line, column: mark.column, key: "", message: "YAML: \(problem)")
        default:
            return ConfigIssue(file: file, line: 0, column: 0, key: "", message: "YAML: \(error)")
        }
    }

    func report(_ node: Node?, _ key: String, _ message: String) {
        let mark = node?.mark
        issues.append(ConfigIssue(file: file, line: mark?.line ?? 0, column: mark?.column ?? 0, key: key, message: message))
    }

    func warn(_ node: Node?, _ key: String, _ message: String) {
        let mark = node?.mark
        warnings.append(ConfigIssue(file: file, line: mark?.line ?? 0, column: mark?.column ?? 0, key: key, message: message))
    }

    /// The pairs of a mapping node, reporting unknown keys. Nil (and an issue) when not a mapping.
    func fields(_ node: Node, _ path: String, allowed: [String]) -> [(String, Node)]? {
        guard let mapping = node.mapping else {
            report(node, path, "expected a mapping with keys \(allowed.joined(separator: ", "))")
            return nil
        }
        var out: [(String, Node)] = []
        var seen = Set<String>()
        for (k, v) in mapping {
            let name = k.string ?? ""
            let keyPath = path.isEmpty ? name : "\(path).\(name)"
            if !allowed.contains(name) {
                let hint = closest(name, in: allowed).map { " (did you mean '\($0)'?)" } ?? ""
                report(k, keyPath, "unknown key\(hint)")
                continue
            }
            if !seen.insert(name).inserted {
                report(k, keyPath, "key given twice")
                continue
            }
            out.append((name, v))
        }
        return out
    }

    func string(_ node: Node, _ path: String) -> String? {
        guard let s = node.scalar?.string, !s.isEmpty else {
            report(node, path, "expected a non-empty string")
            return nil
        }
        return s
    }

    func bool(_ node: Node, _ path: String) -> Bool? {
        guard let b = node.bool else {
            report(node, path, "expected true or false")
            return nil
        }
        return b
    }

    func int(_ node: Node, _ path: String, min: Int, max: Int = Int.max) -> Int? {
        guard let s = node.scalar?.string, let v = Int(s) else {
            report(node, path, "expected a whole number")
            return nil
        }
        guard v >= min, v <= max else {
            report(node, path, max == Int.max ? "must be at least \(min)" : "must be between \(min) and \(max)")
            return nil
        }
        return v
    }

    /// A duration from `ValueBounds.minDuration` (or zero with `allowZero`) to `max`.
    func duration(_ node: Node, _ path: String, allowZero: Bool = false, max: TimeAmount = ValueBounds.maxDuration) -> TimeAmount? {
        guard let s = node.scalar?.string, let v = ValueParsing.duration(s) else {
            report(node, path, "expected a duration such as 500ms, 10s, 2m or 1h")
            return nil
        }
        let min = allowZero ? TimeAmount.zero : ValueBounds.minDuration
        guard v >= min, v <= max else {
            report(node, path, "must be between \(ValueBounds.describe(min)) and \(ValueBounds.describe(max))")
            return nil
        }
        return v
    }

    /// A rate (`20/s`, `300/m`, `1000/h`) in events per second, from `ValueBounds.minRate` (one a
    /// day) to `ValueBounds.maxRate`.
    func rate(_ node: Node, _ path: String, example: String) -> Double? {
        guard let s = node.scalar?.string, let v = ValueParsing.rate(s) else {
            report(node, path, "expected a rate such as \(example), 300/m or 1000/h")
            return nil
        }
        guard v >= ValueBounds.minRate, v <= ValueBounds.maxRate else {
            report(node, path, "must be between one a day (0.0417/h) and \(Int(ValueBounds.maxRate))/s")
            return nil
        }
        return v
    }

    /// A size in bytes from `min` to `max`.
    func bytes(_ node: Node, _ path: String, min: Int = 1, max: Int) -> Int? {
        guard let s = node.scalar?.string, let v = ValueParsing.bytes(s) else {
            report(node, path, "expected a size such as 512, 16KiB or 10MiB")
            return nil
        }
        guard v >= min, v <= max else {
            report(node, path, "must be between \(ValueParsing.describe(bytes: min)) and \(ValueParsing.describe(bytes: max))")
            return nil
        }
        return v
    }

    func hostPort(_ node: Node, _ path: String) -> HostPort? {
        guard let s = node.scalar?.string, let hp = HostPort(parsing: s) else {
            report(node, path, "expected host:port, such as 127.0.0.1:8080 or [::1]:8080")
            return nil
        }
        return hp
    }

    func list(_ node: Node, _ path: String) -> [Node]? {
        if let seq = node.sequence { return Array(seq) }
        report(node, path, "expected a list")
        return nil
    }

    // MARK: - Sections

    static let rootKeys = ["listeners", "sites", "trusted_proxies", "default_site", "admin", "state", "limits", "timeouts", "known_good", "bans", "access_log", "alerts", "reports", "geoip", "fleet"]
    static let alertKeys = ["webhooks"]
    static let reportKeys = ["sources", "organisation", "sector"]
    static let accessLogKeys = ["path", "per_second"]
    static let banKeys = ["enabled", "strikes", "strikes_per_second", "duration", "max_duration", "capacity"] + kernelBanKeys
    static let knownGoodKeys = ["successes", "min_age", "lifetime", "allow"]
    static let listenerKeys = ["address", "proxy_protocol", "proxy_protocol_from", "limits", "timeouts", "tls"]
    static let listenerTLSKeys = ["cert", "key", "http2", "handshake_rate", "handshake_burst", "max_handshakes"]
    static let certKeys = ["cert", "key"]
    static let siteKeys = ["name", "hosts", "origins", "balance", "health_check", "passive_health", "limits", "timeouts", "rate_limits", "cache", "api_keys", "session_cookies", "bearer_credentials", "detection", "challenge", "mode", "tls", "hsts", "https_redirect", "fingerprints", "request_headers", "geo_rules", "credentials"]
    static let detectionKeys = ["enabled", "min_rate", "elevated_factor", "attack_factor", "sustain", "calm_under_attack", "calm_elevated", "baseline_half_life", "cache_bust_share", "uncleared_share", "limited_share", "post_share", "escalate_after"]
    static let challengeKeys = ["enabled", "tier", "difficulty", "clearance_ttl", "clearance_rate", "clearance_burst", "wait", "wait_rate", "wait_burst", "exempt_paths", "exempt_key_holders", "suspicious_agents"]
    static let cacheKeys = ["enabled", "micro_ttl", "stale_for", "max_bytes", "max_object_bytes", "drop_query", "keep_params", "with_cookies"]
    static let rateLimitKeys = ["name", "key", "rate", "burst", "methods", "path", "action", "shadow", "subnet_v4", "subnet_v6", "table_size"]
    static let originKeys = ["address", "max_connections", "tls", "adaptive_concurrency", "min_concurrency"]
    static let originTLSKeys = ["ca", "server_name", "verify"]
    static let fingerprintKeys = ["deny", "challenge"]
    static let requestHeaderKeys = ["strip", "pass", "x_real_ip", "forwarded"]
    static let healthKeys = ["enabled", "path", "interval", "timeout", "unhealthy_after", "healthy_after"]
    static let passiveKeys = ["max_fails", "eject_for"]
    static let adminKeys = ["listen", "token", "token_file", "enabled"]
    static let drainKey = "drain"

    enum Scope { case top, listener, site }

    static let listenerLimitKeys = ["max_connections", "max_connections_per_ip", "max_header_bytes", "max_header_count", "max_requests_per_connection"]
    static let siteLimitKeys = ["max_uri_bytes", "max_body_bytes"]
    static let listenerTimeoutKeys = ["header", "idle", "send"]
    static let siteTimeoutKeys = ["body", "body_min_rate", "origin_connect", "origin_response"]

    func gateway(_ root: Node) -> GatewayConfig? {
        guard let top = fields(root, "", allowed: Self.rootKeys) else { return nil }
        var base = Limits()
        var drain: TimeAmount = .seconds(30)
        // Top-level limits first: listeners and sites start from them.
        for (k, v) in top where k == "limits" { decodeLimits(v, "limits", into: &base, scope: .top) }
        for (k, v) in top where k == "timeouts" {
            decodeTimeouts(v, "timeouts", into: &base, scope: .top, drain: &drain)
        }
        var config = GatewayConfig(listeners: [], sites: [])
        config.limits = base
        config.drainTimeout = drain
        var listenersNode: Node? = nil
        var sitesNode: Node? = nil
        var defaultSiteNode: Node? = nil
        var geoipNode: Node? = nil
        for (k, v) in top {
            switch k {
            case "listeners":
                listenersNode = v
                if let items = list(v, k) {
                    for (i, item) in items.enumerated() {
                        if let l = listener(item, "listeners[\(i)]", base: base) { config.listeners.append(l) }
                    }
                }
            case "sites":
                sitesNode = v
                if let items = list(v, k) {
                    for (i, item) in items.enumerated() {
                        if let s = site(item, "sites[\(i)]", base: base) { config.sites.append(s) }
                    }
                }
            case "trusted_proxies":
                if let items = list(v, k) {
                    for (i, item) in items.enumerated() {
                        guard let s = item.scalar?.string, let cidr = CIDR(s) else {
                            report(item, "trusted_proxies[\(i)]", "expected an address block such as 10.0.0.0/8 or 2001:db8::/32")
                            continue
                        }
                        config.trustedProxies.blocks.append(cidr)
                    }
                }
            case "default_site":
                defaultSiteNode = v
                config.defaultSite = string(v, k)
            case "alerts":
                if let f = fields(v, k, allowed: Self.alertKeys) {
                    for (ak, av) in f where ak == "webhooks" {
                        if let items = list(av, "alerts.webhooks") {
                            for (i, item) in items.enumerated() {
                                guard let u = string(item, "alerts.webhooks[\(i)]") else { continue }
                                if u.hasPrefix("http://") || u.hasPrefix("https://") { config.alertWebhooks.append(u) } else {
                                    report(item, "alerts.webhooks[\(i)]", "expected an http:// or https:// URL")
                                }
                            }
                        }
                    }
                }
            case "access_log":
                if let f = fields(v, k, allowed: Self.accessLogKeys) {
                    for (ak, av) in f {
                        switch ak {
                        case "path": config.accessLogPath = string(av, "access_log.path")
                        case "per_second": config.accessLogPerSecond = int(av, "access_log.per_second", min: 1, max: 10_000_000) ?? config.accessLogPerSecond
                        default: break
                        }
                    }
                }
            case "admin":
                if let f = fields(v, k, allowed: Self.adminKeys) {
                    for (ak, av) in f {
                        switch ak {
                        case "listen": if let hp = hostPort(av, "admin.listen") { config.adminAddress = hp }
                        case "enabled": config.adminEnabled = bool(av, "admin.enabled") ?? true
                        case "token":
                            if let t = string(av, "admin.token") {
                                if t.utf8.count < 16 { report(av, "admin.token", "an admin token needs at least 16 characters") } else { config.adminToken = t }
                            }
                        case "token_file":
                            if let path = string(av, "admin.token_file") {
                                let text = readTextFile(path)?.trimmingCharacters()
                                if let text, text.utf8.count >= 16 { config.adminToken = text } else {
                                    report(av, "admin.token_file", "cannot read a token of at least 16 characters from '\(path)'")
                                }
                            }
                        default: break
                        }
                    }
                }
            case "state":
                if let s = string(v, k) { config.statePath = s }
            case "geoip":
                geoipNode = v
                config.geoip = geoIPConfig(v, k)
            case "fleet":
                config.fleet = fleetConfig(v, k)
            case "bans":
                if let f = fields(v, k, allowed: Self.banKeys) {
                    for (bk, bv) in f {
                        let p = "bans.\(bk)"
                        switch bk {
                        case "enabled": config.bans.enabled = bool(bv, p) ?? config.bans.enabled
                        case "strikes": config.bans.strikes = Double(int(bv, p, min: 1, max: 1_000_000) ?? Int(config.bans.strikes))
                        case "strikes_per_second":
                            if let r = number(bv, p, min: 0, max: ValueBounds.maxRate) { config.bans.strikesPerSecond = r }
                        case "duration": config.bans.duration = duration(bv, p) ?? config.bans.duration
                        case "max_duration": config.bans.maxDuration = duration(bv, p) ?? config.bans.maxDuration
                        case "capacity": config.bans.capacity = int(bv, p, min: 16, max: 10_000_000) ?? config.bans.capacity
                        case _ where Self.kernelBanKeys.contains(bk): kernelBanKey(bk, bv, into: &config.kernelBans)
                        default: break
                        }
                    }
                    if config.bans.duration > config.bans.maxDuration {
                        // Reported on whichever of the two keys the file sets (the first ban, if both).
                        let set = f.first { $0.0 == "duration" } ?? f.first { $0.0 == "max_duration" }
                        let lengths = "\(ValueBounds.describe(config.bans.duration)) > \(ValueBounds.describe(config.bans.maxDuration))"
                        report(set?.1 ?? v, "bans.\(set?.0 ?? "duration")", "bans.duration must not be longer than bans.max_duration (\(lengths))")
                    }
                }
            case "reports":
                if let f = fields(v, k, allowed: Self.reportKeys) {
                    for (rk, rv) in f {
                        let p = "reports.\(rk)"
                        switch rk {
                        case "sources":
                            if let s = string(rv, p) {
                                if let mode = SourceDisclosure(rawValue: s) { config.reports.sources = mode } else {
                                    report(rv, p, "expected full, subnet or hashed")
                                }
                            }
                        case "organisation":
                            if let s = string(rv, p) {
                                let name = s.trimmingCharacters()
                                if name.isEmpty || name.utf8.count > 200 { report(rv, p, "expected a name of 1 to 200 characters") } else {
                                    config.reports.organisation = name
                                }
                            }
                        case "sector":
                            if let s = string(rv, p) {
                                if NIS2Taxonomy.sectors.contains(s) { config.reports.sector = s } else {
                                    let hint = closest(s, in: NIS2Taxonomy.sectors).map { " (did you mean '\($0)'?)" } ?? ""
                                    report(rv, p, "expected a NIS2 sector of the MISP nis2 taxonomy: \(NIS2Taxonomy.sectors.joined(separator: ", "))\(hint)")
                                }
                            }
                        default: break
                        }
                    }
                }
            case "known_good":
                if let f = fields(v, k, allowed: Self.knownGoodKeys) {
                    for (gk, gv) in f {
                        let p = "known_good.\(gk)"
                        switch gk {
                        case "successes": config.knownGood.successes = int(gv, p, min: 1, max: 1000) ?? config.knownGood.successes
                        case "min_age": config.knownGood.minimumAge = duration(gv, p, allowZero: true) ?? config.knownGood.minimumAge
                        case "lifetime": config.knownGood.lifetime = duration(gv, p) ?? config.knownGood.lifetime
                        case "allow":
                            if let items = list(gv, p) {
                                for (i, item) in items.enumerated() {
                                    guard let s = item.scalar?.string, let cidr = CIDR(s) else {
                                        report(item, "\(p)[\(i)]", "expected an address block such as 192.0.2.0/24")
                                        continue
                                    }
                                    config.knownGood.allow.blocks.append(cidr)
                                }
                            }
                        default: break
                        }
                    }
                }
            default:
                break
            }
        }
        if listenersNode == nil { report(root, "listeners", "at least one listener is required") }
        if sitesNode == nil { report(root, "sites", "at least one site is required") }
        if let n = listenersNode, config.listeners.isEmpty, n.sequence?.isEmpty == true {
            report(n, "listeners", "at least one listener is required")
        }
        if let n = sitesNode, config.sites.isEmpty, n.sequence?.isEmpty == true {
            report(n, "sites", "at least one site is required")
        }
        crossCheck(config, root: root, sitesNode: sitesNode, listenersNode: listenersNode, defaultSiteNode: defaultSiteNode)
        crossCheckGeo(config, siteNodes: sitesNode?.sequence.map(Array.init) ?? [], geoipNode: geoipNode)
        return config
    }

    private func crossCheck(_ config: GatewayConfig, root: Node, sitesNode: Node?, listenersNode: Node?, defaultSiteNode: Node?) {
        var names: [String: Int] = [:]
        var hosts: [String: Int] = [:]
        let siteNodes = sitesNode?.sequence.map(Array.init) ?? []
        for (i, site) in config.sites.enumerated() {
            let node = i < siteNodes.count ? siteNodes[i] : sitesNode
            if let prev = names[site.name] {
                report(node, "sites[\(i)].name", "site name '\(site.name)' is already used by sites[\(prev)]")
            } else {
                names[site.name] = i
            }
            for h in site.hosts {
                let key = h.lowercased()
                if let prev = hosts[key], prev != i {
                    report(node, "sites[\(i)].hosts", "host '\(h)' is already claimed by sites[\(prev)]")
                } else {
                    hosts[key] = i
                }
            }
        }
        if let d = config.defaultSite, names[d] == nil {
            report(defaultSiteNode, "default_site", "no site is named '\(d)'")
        }
        var bound: [HostPort: Int] = [:]
        let listenerNodes = listenersNode?.sequence.map(Array.init) ?? []
        for (i, l) in config.listeners.enumerated() {
            if l.address.port != 0, let prev = bound[l.address] {
                let node = i < listenerNodes.count ? listenerNodes[i] : listenersNode
                report(node, "listeners[\(i)].address", "\(l.address) is already used by listeners[\(prev)]")
            } else {
                bound[l.address] = i
            }
        }
    }

    func listener(_ node: Node, _ path: String, base: Limits) -> ListenerConfig? {
        guard let f = fields(node, path, allowed: Self.listenerKeys) else { return nil }
        var address: HostPort? = nil
        var proxyProtocol = false
        var proxyProtocolFrom = CIDRSet()
        var tls: ListenerTLS? = nil
        var limits = base
        var sawAddress = false
        for (k, v) in f {
            let p = "\(path).\(k)"
            switch k {
            case "address": sawAddress = true; address = hostPort(v, p)
            case "proxy_protocol": proxyProtocol = bool(v, p) ?? false
            case "proxy_protocol_from":
                guard let items = list(v, p) else { continue }
                if items.isEmpty {
                    report(v, p, "list the address blocks of the load balancers in front; leave the key out to believe PROXY headers from any peer")
                }
                for (i, item) in items.enumerated() {
                    guard let s = item.scalar?.string, let cidr = CIDR(s) else {
                        report(item, "\(p)[\(i)]", "expected an address block such as 10.0.0.0/8, 2001:db8::/32 or 192.0.2.7")
                        continue
                    }
                    proxyProtocolFrom.blocks.append(cidr)
                }
            case "tls":
                if let files = certificateFiles(v, p, allowed: Self.listenerTLSKeys) {
                    var t = ListenerTLS(files: files)
                    if let h2 = v.mapping?["http2"] { t.http2 = bool(h2, "\(p).http2") ?? true }
                    if let r = v.mapping?["handshake_rate"] {
                        if let rate = rate(r, "\(p).handshake_rate", example: "20/s") { t.handshakeRate = rate }
                    }
                    if let b = v.mapping?["handshake_burst"] { t.handshakeBurst = Double(int(b, "\(p).handshake_burst", min: 1, max: 1_000_000) ?? 40) }
                    if let m = v.mapping?["max_handshakes"] { t.maxHandshakes = int(m, "\(p).max_handshakes", min: 1, max: 10_000_000) ?? 2000 }
                    tls = t
                }
            case "limits": decodeLimits(v, p, into: &limits, scope: .listener)
            case "timeouts":
                var unused = TimeAmount.zero
                decodeTimeouts(v, p, into: &limits, scope: .listener, drain: &unused)
            default: break
            }
        }
        if !sawAddress { report(node, "\(path).address", "a listener needs an address") }
        let fromNode = f.first { $0.0 == "proxy_protocol_from" }?.1
        if proxyProtocol, fromNode == nil {
            let risk = "whoever reaches this listener picks the client address its requests are limited, banned and logged under"
            warn(
                f.first { $0.0 == "proxy_protocol" }?.1, "\(path).proxy_protocol",
                "PROXY headers are believed from any peer: \(risk); list the load balancers in \(path).proxy_protocol_from"
            )
        }
        if !proxyProtocol, let fromNode {
            warn(fromNode, "\(path).proxy_protocol_from", "has no effect without proxy_protocol: true")
        }
        guard let address else { return nil }
        var l = ListenerConfig(address: address, limits: limits)
        l.proxyProtocol = proxyProtocol
        l.proxyProtocolFrom = proxyProtocolFrom
        l.tls = tls
        return l
    }

    /// `{cert: FILE, key: FILE}`: both files must be readable PEM.
    func certificateFiles(_ node: Node, _ path: String, allowed: [String]) -> CertificateFiles? {
        guard let f = fields(node, path, allowed: allowed) else { return nil }
        var cert: String?
        var key: String?
        for (k, v) in f {
            let p = "\(path).\(k)"
            switch k {
            case "cert", "key":
                guard let file = string(v, p) else { continue }
                guard let text = readTextFile(file) else {
                    report(v, p, "cannot read '\(file)'")
                    continue
                }
                if k == "cert" {
                    if !text.contains("-----BEGIN CERTIFICATE-----") { report(v, p, "'\(file)' is not a PEM certificate") } else { cert = file }
                } else {
                    if !text.contains("PRIVATE KEY-----") { report(v, p, "'\(file)' is not a PEM private key") } else { key = file }
                }
            default: break
            }
        }
        if !f.contains(where: { $0.0 == "cert" }) { report(node, "\(path).cert", "a certificate file is required") }
        if !f.contains(where: { $0.0 == "key" }) { report(node, "\(path).key", "a private key file is required") }
        guard let cert, let key else { return nil }
        return CertificateFiles(certificate: cert, key: key)
    }

    func site(_ node: Node, _ path: String, base: Limits) -> SiteConfig? {
        guard let f = fields(node, path, allowed: Self.siteKeys) else { return nil }
        var name: String? = nil
        var hosts: [String] = []
        var origins: [OriginConfig] = []
        var limits = base
        var balance = BalanceStrategy.leastConnections
        var health = HealthCheckConfig()
        var passive = PassiveHealthConfig()
        var rateLimits = RateLimitRule.defaults
        var cache = CacheConfig()
        var apiKeys: Set<String> = []
        var sessionCookies: [String] = []
        var bearerCredentials = false
        var detection = DetectionConfig()
        var challenge = ChallengeConfig()
        var credentials = CredentialGuardConfig()
        var fixedMode: SiteMode? = nil
        var siteTLS: CertificateFiles? = nil
        var hsts: String? = nil
        var httpsRedirect = false
        var fingerprints = FingerprintRules()
        var requestHeaders = RequestHeaderPolicy()
        var geoRules = GeoRules()
        var sawHosts = false
        var sawOrigins = false
        for (k, v) in f {
            let p = "\(path).\(k)"
            switch k {
            case "name":
                name = string(v, p)
                if let n = name, !n.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) {
                    report(v, p, "use letters, digits, '-', '_' and '.' only")
                }
            case "hosts":
                sawHosts = true
                if let items = list(v, p) {
                    for (i, item) in items.enumerated() {
                        guard let h = string(item, "\(p)[\(i)]") else { continue }
                        if !SiteRouter.isValidPattern(h) {
                            report(item, "\(p)[\(i)]", "expected a host name such as example.org, *.example.org or *")
                            continue
                        }
                        hosts.append(h.lowercased())
                    }
                    if items.isEmpty { report(v, p, "a site needs at least one host name") }
                }
            case "origins":
                sawOrigins = true
                if let items = list(v, p) {
                    for (i, item) in items.enumerated() {
                        if let o = origin(item, "\(p)[\(i)]") { origins.append(o) }
                    }
                    if items.isEmpty { report(v, p, "a site needs at least one origin") }
                }
            case "balance":
                if let s = string(v, p) {
                    if let b = BalanceStrategy(rawValue: s) {
                        balance = b
                    } else {
                        report(v, p, "expected one of \(BalanceStrategy.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                }
            case "health_check": health = healthCheck(v, p)
            case "passive_health":
                if let pf = fields(v, p, allowed: Self.passiveKeys) {
                    for (pk, pv) in pf {
                        switch pk {
                        case "max_fails": if let n = int(pv, "\(p).\(pk)", min: 1, max: 1000) { passive.maxFails = n }
                        case "eject_for": if let d = duration(pv, "\(p).\(pk)") { passive.ejectFor = d }
                        default: break
                        }
                    }
                }
            case "limits": decodeLimits(v, p, into: &limits, scope: .site)
            case "timeouts":
                var unused = TimeAmount.zero
                decodeTimeouts(v, p, into: &limits, scope: .site, drain: &unused)
            case "cache": cache = cacheConfig(v, p)
            case "session_cookies":
                if let items = list(v, p) {
                    sessionCookies = items.enumerated().compactMap { i, item in string(item, "\(p)[\(i)]") }
                }
            case "bearer_credentials": bearerCredentials = bool(v, p) ?? false
            case "detection": detection = detectionConfig(v, p)
            case "tls": siteTLS = certificateFiles(v, p, allowed: Self.certKeys)
            case "hsts":
                if let h = string(v, p) {
                    if h.hasPrefix("max-age=") { hsts = h } else { report(v, p, "expected a Strict-Transport-Security value such as 'max-age=31536000'") }
                }
            case "https_redirect": httpsRedirect = bool(v, p) ?? false
            case "mode":
                if let m = string(v, p) {
                    if m == "auto" { fixedMode = nil } else if let mode = SiteMode(rawValue: m) { fixedMode = mode } else {
                        report(v, p, "expected auto, normal, elevated or under_attack")
                    }
                }
            case "challenge": challenge = challengeConfig(v, p)
            case "credentials": credentials = credentialConfig(v, p)
            case "fingerprints": fingerprints = fingerprintRules(v, p)
            case "request_headers": requestHeaders = requestHeaderPolicy(v, p)
            case "geo_rules": geoRules = self.geoRules(v, p)
            case "api_keys":
                if let items = list(v, p) {
                    for (i, item) in items.enumerated() {
                        guard let key = string(item, "\(p)[\(i)]") else { continue }
                        if key.utf8.count < 16 || key.contains(" ") {
                            report(item, "\(p)[\(i)]", "an API key needs at least 16 characters and no spaces")
                            continue
                        }
                        apiKeys.insert(key)
                    }
                }
            case "rate_limits":
                if let items = list(v, p) {
                    rateLimits = items.enumerated().compactMap { i, item in rateLimit(item, "\(p)[\(i)]") }
                    var seen = Set<String>()
                    for (i, r) in rateLimits.enumerated() where !seen.insert(r.name).inserted {
                        report(items[min(i, items.count - 1)], "\(p)[\(i)].name", "rule name '\(r.name)' is used twice")
                    }
                }
            default: break
            }
        }
        if name == nil, f.first(where: { $0.0 == "name" }) == nil { report(node, "\(path).name", "a site needs a name") }
        if !sawHosts { report(node, "\(path).hosts", "a site needs at least one host name") }
        if !sawOrigins { report(node, "\(path).origins", "a site needs at least one origin") }
        guard let name else { return nil }
        var s = SiteConfig(name: name, hosts: hosts, origins: origins, limits: limits)
        s.balance = balance
        s.healthCheck = health
        s.passive = passive
        s.rateLimits = rateLimits
        s.cache = cache
        s.apiKeys = apiKeys
        s.sessionCookies = sessionCookies
        s.bearerCredentials = bearerCredentials
        s.detection = detection
        s.challenge = challenge
        s.credentials = credentials
        s.fixedMode = fixedMode
        s.tls = siteTLS
        s.hsts = hsts
        s.httpsRedirect = httpsRedirect
        s.fingerprints = fingerprints
        s.requestHeaders = requestHeaders
        s.geoRules = geoRules
        return s
    }

    func number(_ node: Node, _ path: String, min: Double, max: Double) -> Double? {
        guard let text = node.scalar?.string, let v = Double(text), v.isFinite, v >= min, v <= max else {
            report(node, path, "expected a number from \(min) to \(max)")
            return nil
        }
        return v
    }

    func seconds(_ node: Node, _ path: String) -> Int? {
        guard let d = duration(node, path) else { return nil }
        return Int(max(1, d.nanoseconds / 1_000_000_000))
    }

    func detectionConfig(_ node: Node, _ path: String) -> DetectionConfig {
        var c = DetectionConfig()
        guard let f = fields(node, path, allowed: Self.detectionKeys) else { return c }
        for (k, v) in f {
            let p = "\(path).\(k)"
            switch k {
            case "enabled": c.enabled = bool(v, p) ?? c.enabled
            case "min_rate":
                c.minRate = rate(v, p, example: "50/s") ?? c.minRate
            case "elevated_factor": c.elevatedFactor = number(v, p, min: 1.1, max: 1000) ?? c.elevatedFactor
            case "attack_factor": c.attackFactor = number(v, p, min: 1.1, max: 10000) ?? c.attackFactor
            case "sustain": c.sustain = seconds(v, p) ?? c.sustain
            case "calm_under_attack": c.calmUnderAttack = seconds(v, p) ?? c.calmUnderAttack
            case "calm_elevated": c.calmElevated = seconds(v, p) ?? c.calmElevated
            case "baseline_half_life": c.baselineHalfLife = Double(seconds(v, p) ?? Int(c.baselineHalfLife))
            case "cache_bust_share": c.cacheBustShare = number(v, p, min: 0.01, max: 1) ?? c.cacheBustShare
            case "uncleared_share": c.unclearedShare = number(v, p, min: 0.01, max: 1) ?? c.unclearedShare
            case "limited_share": c.limitedShare = number(v, p, min: 0.01, max: 1) ?? c.limitedShare
            case "post_share": c.postShare = number(v, p, min: 0.01, max: 1) ?? c.postShare
            case "escalate_after": c.escalateAfter = seconds(v, p) ?? c.escalateAfter
            default: break
            }
        }
        if c.attackFactor < c.elevatedFactor {
            report(node, "\(path).attack_factor", "must not be below elevated_factor (\(c.elevatedFactor))")
        }
        return c
    }

    func challengeConfig(_ node: Node, _ path: String) -> ChallengeConfig {
        var c = ChallengeConfig()
        guard let f = fields(node, path, allowed: Self.challengeKeys) else { return c }
        for (k, v) in f {
            let p = "\(path).\(k)"
            switch k {
            case "enabled": c.enabled = bool(v, p) ?? c.enabled
            case "tier":
                if let s = string(v, p) {
                    if s == "auto" { c.tier = nil } else if let t = ChallengeTier(rawValue: s) { c.tier = t } else { report(v, p, "expected auto, cookie or pow") }
                }
            case "difficulty": c.difficulty = int(v, p, min: 1, max: 28) ?? c.difficulty
            case "clearance_ttl": c.clearanceTTL = duration(v, p) ?? c.clearanceTTL
            case "clearance_rate":
                c.clearanceRate = rate(v, p, example: "20/s") ?? c.clearanceRate
            case "clearance_burst": c.clearanceBurst = Double(int(v, p, min: 1, max: 1_000_000) ?? Int(c.clearanceBurst))
            case "wait": c.waitSeconds = seconds(v, p).map { Swift.min($0, 60) } ?? c.waitSeconds
            case "wait_rate":
                c.waitRate = rate(v, p, example: "2/s") ?? c.waitRate
            case "wait_burst": c.waitBurst = Double(int(v, p, min: 1, max: 1_000_000) ?? Int(c.waitBurst))
            case "exempt_paths":
                if let items = list(v, p) {
                    c.exemptPaths = []
                    for (i, item) in items.enumerated() {
                        guard let s = string(item, "\(p)[\(i)]") else { continue }
                        if s.hasPrefix("/") { c.exemptPaths.append(s) } else { report(item, "\(p)[\(i)]", "must start with '/'") }
                    }
                }
            case "exempt_key_holders": c.exemptKeyHolders = bool(v, p) ?? c.exemptKeyHolders
            case "suspicious_agents":
                if let items = list(v, p) { c.suspiciousAgents = items.enumerated().compactMap { i, item in string(item, "\(p)[\(i)]")?.lowercased() } }
            default: break
            }
        }
        return c
    }

    func cacheConfig(_ node: Node, _ path: String) -> CacheConfig {
        var c = CacheConfig()
        guard let f = fields(node, path, allowed: Self.cacheKeys) else { return c }
        for (k, v) in f {
            let p = "\(path).\(k)"
            switch k {
            case "enabled": c.enabled = bool(v, p) ?? c.enabled
            case "micro_ttl": c.microTTL = duration(v, p, allowZero: true) ?? c.microTTL
            case "stale_for": c.staleFor = duration(v, p, allowZero: true) ?? c.staleFor
            case "max_bytes": c.maxBytes = bytes(v, p, min: 65536, max: ValueBounds.maxCacheBytes) ?? c.maxBytes
            case "max_object_bytes": c.maxObjectBytes = bytes(v, p, min: 1, max: ValueBounds.maxCacheObjectBytes) ?? c.maxObjectBytes
            case "with_cookies": c.withCookies = bool(v, p) ?? c.withCookies
            case "keep_params":
                if let items = list(v, p) { c.keepParams = items.enumerated().compactMap { i, item in string(item, "\(p)[\(i)]") } }
            case "drop_query":
                if let items = list(v, p) {
                    c.dropQuery = []
                    for (i, item) in items.enumerated() {
                        guard let s = string(item, "\(p)[\(i)]") else { continue }
                        if s.hasPrefix("/") { c.dropQuery.append(s) } else { report(item, "\(p)[\(i)]", "must start with '/'") }
                    }
                }
            default: break
            }
        }
        return c
    }

    func rateLimit(_ node: Node, _ path: String) -> RateLimitRule? {
        guard let f = fields(node, path, allowed: Self.rateLimitKeys) else { return nil }
        var rule = RateLimitRule(name: "", ratePerSecond: 0, burst: 0)
        var sawRate = false
        var sawBurst = false
        for (k, v) in f {
            let p = "\(path).\(k)"
            switch k {
            case "name": rule.name = string(v, p) ?? ""
            case "key":
                if let s = string(v, p) {
                    if let key = RateLimitKey(rawValue: s) { rule.key = key } else { report(v, p, "expected ip, subnet, api_key or ja4") }
                }
            case "rate":
                sawRate = true
                rule.ratePerSecond = rate(v, p, example: "20/s") ?? rule.ratePerSecond
            case "burst":
                sawBurst = true
                rule.burst = Double(int(v, p, min: 1, max: 10_000_000) ?? 1)
            case "methods":
                if let items = list(v, p) {
                    for (i, item) in items.enumerated() {
                        guard let m = item.scalar?.string.uppercased(), !m.isEmpty else {
                            report(item, "\(p)[\(i)]", "expected an HTTP method such as GET or POST")
                            continue
                        }
                        rule.methods.append(m)
                    }
                }
            case "path":
                if let s = string(v, p) {
                    if s.hasPrefix("/") { rule.pathPrefix = s } else { report(v, p, "must start with '/'") }
                }
            case "action":
                if let s = string(v, p) {
                    if let a = RateLimitAction(rawValue: s) {
                        rule.action = a
                    } else {
                        report(v, p, "expected one of \(RateLimitAction.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                }
            case "shadow": rule.shadow = bool(v, p) ?? false
            case "subnet_v4": rule.subnetV4 = int(v, p, min: 8, max: 32) ?? rule.subnetV4
            case "subnet_v6": rule.subnetV6 = int(v, p, min: 16, max: 128) ?? rule.subnetV6
            case "table_size": rule.tableCapacity = int(v, p, min: 64, max: 16_777_216) ?? rule.tableCapacity
            default: break
            }
        }
        if rule.name.isEmpty, f.first(where: { $0.0 == "name" }) == nil { report(node, "\(path).name", "a rate limit needs a name") }
        if !sawRate { report(node, "\(path).rate", "a rate limit needs a rate, such as 20/s") }
        if !sawBurst { rule.burst = max(1, (rule.ratePerSecond).rounded(.up)) }
        return rule.name.isEmpty ? nil : rule
    }

    func origin(_ node: Node, _ path: String) -> OriginConfig? {
        // Short form: "- 127.0.0.1:9000".
        if node.scalar != nil {
            guard let hp = hostPort(node, path) else { return nil }
            if hp.port == 0 { report(node, path, "an origin needs a port other than 0") }
            return OriginConfig(address: hp)
        }
        guard let f = fields(node, path, allowed: Self.originKeys) else { return nil }
        var address: HostPort? = nil
        var maxConnections = 128
        var tls: OriginTLS? = nil
        var adaptive = true
        var minConcurrency: Int? = nil
        for (k, v) in f {
            switch k {
            case "tls": tls = originTLS(v, "\(path).tls")
            case "adaptive_concurrency": adaptive = bool(v, "\(path).adaptive_concurrency") ?? adaptive
            case "min_concurrency": minConcurrency = int(v, "\(path).min_concurrency", min: 1, max: 100_000)
            case "address":
                address = hostPort(v, "\(path).address")
                if address?.port == 0 { report(v, "\(path).address", "an origin needs a port other than 0") }
            case "max_connections": maxConnections = int(v, "\(path).max_connections", min: 1, max: 100_000) ?? maxConnections
            default: break
            }
        }
        if f.first(where: { $0.0 == "address" }) == nil { report(node, "\(path).address", "an origin needs an address") }
        if let minConcurrency, minConcurrency > maxConnections, let v = f.first(where: { $0.0 == "min_concurrency" })?.1 {
            report(v, "\(path).min_concurrency", "min_concurrency (\(minConcurrency)) is above max_connections (\(maxConnections))")
        }
        guard let address else { return nil }
        var o = OriginConfig(address: address)
        o.maxConnections = maxConnections
        o.tls = tls
        o.adaptiveConcurrency = adaptive
        o.minConcurrency = min(minConcurrency ?? min(2, maxConnections), maxConnections)
        return o
    }

    /// `tls: true`, or a mapping with `ca`, `server_name` and `verify`.
    func originTLS(_ node: Node, _ path: String) -> OriginTLS? {
        if node.scalar != nil {
            return bool(node, path) == true ? OriginTLS() : nil
        }
        guard let f = fields(node, path, allowed: Self.originTLSKeys) else { return nil }
        var t = OriginTLS()
        for (k, v) in f {
            let p = "\(path).\(k)"
            switch k {
            case "ca":
                if let file = string(v, p) {
                    if readTextFile(file) != nil { t.caFile = file } else { report(v, p, "cannot read \(file)") }
                }
            case "server_name": t.serverName = string(v, p)
            case "verify": t.verify = bool(v, p) ?? true
            default: break
            }
        }
        return t
    }

    /// Request headers the gateway frames or routes by: stripping one would let the origin parse a
    /// different request from the one the gateway decided on.
    static let unstrippableHeaders: Set<String> = ["host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"]

    /// `request_headers: {strip: [...], pass: [...], x_real_ip: bool, forwarded: bool}`. `strip`
    /// replaces the default list; `pass` removes names from the list in force (the default, or
    /// `strip`). Names are HTTP tokens, compared and stored in lower case.
    func requestHeaderPolicy(_ node: Node, _ path: String) -> RequestHeaderPolicy {
        var policy = RequestHeaderPolicy()
        guard let f = fields(node, path, allowed: Self.requestHeaderKeys) else { return policy }
        var passed: [(name: String, node: Node, key: String)] = []
        for (k, v) in f {
            let p = "\(path).\(k)"
            switch k {
            case "x_real_ip": policy.setRealIP = bool(v, p) ?? policy.setRealIP
            case "forwarded": policy.setForwarded = bool(v, p) ?? policy.setForwarded
            case "strip", "pass":
                guard let items = list(v, p) else { continue }
                var names: [String] = []
                for (i, item) in items.enumerated() {
                    let key = "\(p)[\(i)]"
                    guard let name = headerName(item, key) else { continue }
                    if names.contains(name) {
                        report(item, key, "'\(name)' is listed twice")
                        continue
                    }
                    if k == "strip", Self.unstrippableHeaders.contains(name) {
                        report(item, key, "the gateway frames or routes requests by '\(name)'; it cannot be stripped")
                        continue
                    }
                    names.append(name)
                    if k == "pass" { passed.append((name, item, key)) }
                }
                if k == "strip" { policy.strip = names }
            default: break
            }
        }
        for (name, item, key) in passed {
            guard let i = policy.strip.firstIndex(of: name) else {
                report(item, key, "'\(name)' is not stripped, so there is nothing to pass; stripped: \(policy.strip.joined(separator: ", "))")
                continue
            }
            policy.strip.remove(at: i)
        }
        if !policy.setRealIP, !policy.strip.contains("x-real-ip") {
            warn(node, path, "X-Real-IP is neither set by the gateway nor stripped: clients can pick the address the origin sees in it")
        }
        if !policy.setForwarded, !policy.strip.contains("forwarded") {
            warn(node, path, "Forwarded is neither set by the gateway nor stripped: clients can pick the address the origin sees in it")
        }
        return policy
    }

    /// A header name: an HTTP token (RFC 9110 section 5.6.2), returned in lower case.
    func headerName(_ node: Node, _ path: String) -> String? {
        let tchar = Set("!#$%&'*+-.^_`|~".utf8)
        guard let s = node.scalar?.string, !s.isEmpty,
            s.utf8.allSatisfy({ tchar.contains($0) || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) })
        else {
            report(node, path, "expected a header name such as x-real-ip (letters, digits and !#$%&'*+-.^_`|~)")
            return nil
        }
        return s.lowercased()
    }

    /// `fingerprints: {deny: [...], challenge: [...]}`: JA4 fingerprints or prefixes ending in `*`.
    func fingerprintRules(_ node: Node, _ path: String) -> FingerprintRules {
        var rules = FingerprintRules()
        guard let f = fields(node, path, allowed: Self.fingerprintKeys) else { return rules }
        for (k, v) in f {
            let p = "\(path).\(k)"
            guard let items = list(v, p) else { continue }
            for (i, item) in items.enumerated() {
                guard let s = item.scalar?.string, let pattern = FingerprintPattern(s) else {
                    report(item, "\(p)[\(i)]", "expected a JA4 fingerprint such as t13d1516h2_8daaf6152771_d8a2da3f94cd, or a prefix ending in *")
                    continue
                }
                if k == "deny" { rules.deny.append(pattern) } else { rules.challenge.append(pattern) }
            }
        }
        return rules
    }

    func healthCheck(_ node: Node, _ path: String) -> HealthCheckConfig {
        var h = HealthCheckConfig()
        guard let f = fields(node, path, allowed: Self.healthKeys) else { return h }
        for (k, v) in f {
            let p = "\(path).\(k)"
            switch k {
            case "enabled": h.enabled = bool(v, p) ?? h.enabled
            case "path":
                if let s = string(v, p) {
                    if s.hasPrefix("/") { h.path = s } else { report(v, p, "must start with '/'") }
                }
            case "interval": h.interval = duration(v, p) ?? h.interval
            case "timeout": h.timeout = duration(v, p) ?? h.timeout
            case "unhealthy_after": h.unhealthyAfter = int(v, p, min: 1, max: 100) ?? h.unhealthyAfter
            case "healthy_after": h.healthyAfter = int(v, p, min: 1, max: 100) ?? h.healthyAfter
            default: break
            }
        }
        return h
    }

    func decodeLimits(_ node: Node, _ path: String, into limits: inout Limits, scope: Scope) {
        let all = Self.listenerLimitKeys + Self.siteLimitKeys
        guard let f = fields(node, path, allowed: all) else { return }
        for (k, v) in f {
            let p = "\(path).\(k)"
            if !applies(k, scope: scope, listenerKeys: Self.listenerLimitKeys, siteKeys: Self.siteLimitKeys, node: v, path: p) { continue }
            switch k {
            case "max_connections": limits.maxConnections = int(v, p, min: 1, max: 10_000_000) ?? limits.maxConnections
            case "max_connections_per_ip": limits.maxConnectionsPerIP = int(v, p, min: 1, max: 10_000_000) ?? limits.maxConnectionsPerIP
            case "max_header_bytes": limits.maxHeaderBytes = bytes(v, p, min: 256, max: ValueBounds.maxHeaderBytes) ?? limits.maxHeaderBytes
            case "max_header_count": limits.maxHeaderCount = int(v, p, min: 4, max: 10_000) ?? limits.maxHeaderCount
            case "max_requests_per_connection":
                limits.maxRequestsPerConnection = int(v, p, min: 1, max: 10_000_000) ?? limits.maxRequestsPerConnection
            case "max_uri_bytes": limits.maxURIBytes = bytes(v, p, min: 16, max: ValueBounds.maxHeaderBytes) ?? limits.maxURIBytes
            case "max_body_bytes": limits.maxBodyBytes = bytes(v, p, min: 0, max: ValueBounds.maxBodyBytes) ?? limits.maxBodyBytes
            default: break
            }
        }
    }

    func decodeTimeouts(_ node: Node, _ path: String, into limits: inout Limits, scope: Scope, drain: inout TimeAmount) {
        var all = Self.listenerTimeoutKeys + Self.siteTimeoutKeys
        if scope == .top { all.append(Self.drainKey) }
        guard let f = fields(node, path, allowed: all) else { return }
        for (k, v) in f {
            let p = "\(path).\(k)"
            if k == Self.drainKey {
                drain = duration(v, p) ?? drain
                continue
            }
            if !applies(k, scope: scope, listenerKeys: Self.listenerTimeoutKeys, siteKeys: Self.siteTimeoutKeys, node: v, path: p) { continue }
            switch k {
            case "header": limits.headerTimeout = duration(v, p) ?? limits.headerTimeout
            case "idle": limits.idleTimeout = duration(v, p) ?? limits.idleTimeout
            case "send": limits.sendTimeout = duration(v, p) ?? limits.sendTimeout
            case "body": limits.bodyTimeout = duration(v, p) ?? limits.bodyTimeout
            case "body_min_rate": limits.bodyMinRate = bytes(v, p, min: 0, max: ValueBounds.maxBodyMinRate) ?? limits.bodyMinRate
            case "origin_connect": limits.originConnectTimeout = duration(v, p) ?? limits.originConnectTimeout
            case "origin_response": limits.originResponseTimeout = duration(v, p) ?? limits.originResponseTimeout
            default: break
            }
        }
    }

    /// Whether key `k` may be set at `scope`; reports the mistake when not.
    private func applies(_ k: String, scope: Scope, listenerKeys: [String], siteKeys: [String], node: Node, path: String) -> Bool {
        switch scope {
        case .top: return true
        case .listener where siteKeys.contains(k):
            report(node, path, "applies to sites, not listeners; set it under sites[].\(path.split(separator: ".").suffix(2).joined(separator: ".")) or at the top level")
            return false
        case .site where listenerKeys.contains(k):
            report(node, path, "applies to listeners, not sites; set it under listeners[].\(path.split(separator: ".").suffix(2).joined(separator: ".")) or at the top level")
            return false
        default: return true
        }
    }

    /// The allowed key nearest to a misspelt one (edit distance at most 2).
    private func closest(_ name: String, in allowed: [String]) -> String? {
        var best: (String, Int)? = nil
        for candidate in allowed {
            let d = editDistance(Array(name), Array(candidate))
            if d <= 2, best == nil || d < best!.1 { best = (candidate, d) }
        }
        return best?.0
    }

    private func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }
}

/// Parsing of the value syntaxes used in the config: durations and byte sizes.
public enum ValueParsing {
    /// `250ms`, `10s`, `2m`, `1h`, or a bare number of seconds.
    public static func duration(_ text: String) -> TimeAmount? {
        let s = text.trimmingCharacters()
        let units: [(String, Int64)] = [("ms", 1_000_000), ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000)]
        for (suffix, factor) in units where s.hasSuffix(suffix) {
            let number = s.dropLast(suffix.count)
            // "ms" also ends in "s": only accept a plain number before the suffix.
            if let v = Int64(number), v >= 0, v <= Int64.max / factor { return .nanoseconds(v * factor) }
            if let d = Double(number), d >= 0, d.isFinite, d * Double(factor) < Double(Int64.max) {
                return .nanoseconds(Int64(d * Double(factor)))
            }
        }
        if let v = Int64(s), v >= 0, v <= Int64.max / 1_000_000_000 { return .seconds(v) }
        return nil
    }

    /// `20/s`, `300/m`, `300/min`, `1000/h`, or a bare number per second; returns requests per second.
    public static func rate(_ text: String) -> Double? {
        let parts = text.trimmingCharacters().split(separator: "/")
        guard let first = parts.first, let n = Double(first.trimmingASCIISpaces()), n >= 0, n.isFinite, parts.count <= 2 else { return nil }
        guard parts.count == 2 else { return n }
        switch parts[1].trimmingASCIISpaces() {
        case "s", "sec", "second": return n
        case "m", "min", "minute": return n / 60
        case "h", "hour": return n / 3600
        default: return nil
        }
    }

    /// `count` bytes as the config would spell it: `512 bytes`, `16KiB`, `100MiB`, `64GiB`.
    package static func describe(bytes count: Int) -> String {
        for (suffix, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] where count != 0 && count % (1 << shift) == 0 {
            return "\(count >> shift)\(suffix)"
        }
        return "\(count) bytes"
    }

    /// `512`, `16k`, `16KiB`, `16KB`, `10M`, `10MiB`, `1GiB` (all binary multiples).
    public static func bytes(_ text: String) -> Int? {
        let s = text.trimmingCharacters()
        let units: [(String, Int)] = [
            ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30),
            ("k", 1 << 10), ("K", 1 << 10), ("m", 1 << 20), ("M", 1 << 20), ("g", 1 << 30), ("G", 1 << 30), ("B", 1),
        ]
        for (suffix, factor) in units where s.hasSuffix(suffix) {
            guard let v = Int(s.dropLast(suffix.count).trimmingCharacters()), v >= 0, v <= Int.max / factor else { return nil }
            return v * factor
        }
        guard let v = Int(s), v >= 0 else { return nil }
        return v
    }
}

extension StringProtocol {
    func trimmingCharacters() -> String {
        String(Substring(self).trimmingASCIISpaces())
    }
}
