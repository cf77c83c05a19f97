import Yams

/// Decoding of `sites[].credentials` (the failed-credentials guard, ``CredentialGuardConfig``).
extension ConfigReader {
    static let credentialKeys = [
        "enabled", "login_routes", "failure_status", "failure_location", "per_source", "per_subnet", "per_fingerprint", "window", "block_for",
    ]

    func credentialConfig(_ node: Node, _ path: String) -> CredentialGuardConfig {
        var c = CredentialGuardConfig()
        guard let f = fields(node, path, allowed: Self.credentialKeys) else { return c }
        for (k, v) in f {
            let p = "\(path).\(k)"
            switch k {
            case "enabled": c.enabled = bool(v, p) ?? c.enabled
            case "login_routes":
                guard let items = list(v, p) else { continue }
                c.loginRoutes = []
                for (i, item) in items.enumerated() {
                    guard let s = string(item, "\(p)[\(i)]") else { continue }
                    if s.hasPrefix("/") { c.loginRoutes.append(s) } else { report(item, "\(p)[\(i)]", "must start with '/'") }
                }
            case "failure_status":
                guard let items = list(v, p) else { continue }
                c.failureStatus = items.enumerated().compactMap { i, item in int(item, "\(p)[\(i)]", min: 200, max: 599) }
            case "failure_location":
                let s = string(v, p)
                c.failureLocation = s?.isEmpty == true ? nil : s
            case "per_source": c.perSource = int(v, p, min: 1, max: 1_000_000) ?? c.perSource
            case "per_subnet": c.perSubnet = int(v, p, min: 1, max: 1_000_000) ?? c.perSubnet
            case "per_fingerprint": c.perFingerprint = int(v, p, min: 1, max: 10_000_000) ?? c.perFingerprint
            case "window": c.window = duration(v, p) ?? c.window
            case "block_for": c.blockFor = duration(v, p) ?? c.blockFor
            default: break
            }
        }
        if c.perSubnet < c.perSource, let v = f.first(where: { $0.0 == "per_subnet" })?.1 {
            report(v, "\(path).per_subnet", "must not be below per_source (\(c.perSource)): a subnet holds the source")
        }
        return c
    }
}
