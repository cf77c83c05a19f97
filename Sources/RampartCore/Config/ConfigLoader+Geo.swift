import Yams

#if canImport(Glibc)
import Glibc
#endif

/// Decoding of the edge-filter settings: `geoip`, `sites[].geo_rules` and `bans.kernel*`.
extension ConfigReader {
    static let geoIPKeys = ["country_db", "asn_db", "tor_geoip", "tor_geoip6", "cache_size"]
    static let geoRuleKeys = ["countries", "asns", "action", "rate", "burst"]
    static let kernelBanKeys = ["kernel", "kernel_table", "kernel_on_exit", "kernel_ports", "kernel_hook"]

    /// `geoip: {country_db, asn_db, tor_geoip, tor_geoip6, cache_size}`. Files must be readable;
    /// MMDB files are opened to prove they are valid (in a build with libmaxminddb).
    func geoIPConfig(_ node: Node, _ path: String) -> GeoIPConfig {
        var g = GeoIPConfig()
        guard let f = fields(node, path, allowed: Self.geoIPKeys) else { return g }
        var v6Set = false
        for (k, v) in f {
            let p = "\(path).\(k)"
            switch k {
            case "country_db", "asn_db":
                guard let file = string(v, p) else { continue }
                #if RAMPART_MAXMINDDB
                do {
                    _ = try MaxMindDatabase(path: file)
                } catch {
                    report(v, p, error.message)
                    continue
                }
                #else
                report(v, p, maxMindDBMissingMessage)
                continue
                #endif
                if k == "country_db" { g.countryDB = file } else { g.asnDB = file }
            case "tor_geoip", "tor_geoip6":
                if v.scalar?.string == "off" || v.bool == false {
                    if k == "tor_geoip" { g.torGeoIP = nil; g.torGeoIP6 = nil } else { g.torGeoIP6 = nil; v6Set = true }
                    continue
                }
                guard let file = string(v, p) else { continue }
                guard fileExists(file) else {
                    report(v, p, "cannot read '\(file)' (Debian ships Tor's ranges in the tor-geoipdb package), or set it to off")
                    continue
                }
                if k == "tor_geoip" {
                    g.torGeoIP = file
                    if !v6Set { g.torGeoIP6 = fileExists(file + "6") ? file + "6" : nil }
                } else {
                    g.torGeoIP6 = file
                    v6Set = true
                }
            case "cache_size":
                g.cacheSize = int(v, p, min: 16, max: 1 << 20) ?? g.cacheSize
            default: break
            }
        }
        return g
    }

    /// `geo_rules: [{countries: [XX], asns: [64500], action: allow|deny|challenge|limit, rate, burst}]`.
    func geoRules(_ node: Node, _ path: String) -> GeoRules {
        var rules = GeoRules()
        guard let items = list(node, path) else { return rules }
        for (i, item) in items.enumerated() {
            let rp = "\(path)[\(i)]"
            guard let f = fields(item, rp, allowed: Self.geoRuleKeys) else { continue }
            var rule = GeoRule(action: .deny)
            var sawAction = false
            var sawRate = false
            var sawBurst = false
            for (k, v) in f {
                let p = "\(rp).\(k)"
                switch k {
                case "countries":
                    guard let codes = list(v, p) else { continue }
                    for (j, c) in codes.enumerated() {
                        let text = c.scalar?.string ?? ""
                        if text == "*" {
                            rule.anyCountry = true
                            continue
                        }
                        guard let code = CountryCode(text), text.utf8.allSatisfy({ $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else {
                            report(c, "\(p)[\(j)]", "expected an ISO 3166-1 alpha-2 country code in capitals, such as FR or DE, or * for every source")
                            continue
                        }
                        guard code.isKnown else {
                            report(c, "\(p)[\(j)]", "'\(text)' is not an assigned ISO 3166-1 alpha-2 country code")
                            continue
                        }
                        rule.countries.insert(code)
                    }
                case "asns":
                    guard let numbers = list(v, p) else { continue }
                    for (j, n) in numbers.enumerated() {
                        var text = n.scalar?.string ?? ""
                        if text.hasPrefix("AS") || text.hasPrefix("as") { text.removeFirst(2) }
                        guard let value = UInt64(text), value >= 1, value <= UInt64(UInt32.max) else {
                            report(n, "\(p)[\(j)]", "expected an autonomous system number from 1 to 4294967295, such as 64500 or AS64500")
                            continue
                        }
                        rule.asns.insert(UInt32(value))
                    }
                case "action":
                    sawAction = true
                    guard let s = string(v, p) else { continue }
                    guard let a = GeoAction(rawValue: s) else {
                        report(v, p, "expected one of \(GeoAction.allCases.map(\.rawValue).joined(separator: ", "))")
                        continue
                    }
                    rule.action = a
                case "rate":
                    sawRate = true
                    if let r = rate(v, p, example: "2/s") { rule.ratePerSecond = r }
                case "burst":
                    sawBurst = true
                    if let b = int(v, p, min: 1, max: 1_000_000) { rule.burst = Double(b) }
                default: break
                }
            }
            if !sawAction { report(item, "\(rp).action", "a geo rule needs an action: allow, deny, challenge or limit") }
            if rule.countries.isEmpty, rule.asns.isEmpty, !rule.anyCountry, f.contains(where: { $0.0 == "countries" || $0.0 == "asns" }) == false {
                report(item, "\(rp).countries", "a geo rule needs countries or asns")
            }
            if rule.action != .limit, sawRate || sawBurst {
                report(item, "\(rp).\(sawRate ? "rate" : "burst")", "rate and burst only apply to action: limit")
            }
            if rule.action == .limit, !sawRate {
                report(item, "\(rp).rate", "a limit rule needs a rate, such as 2/s or 60/m")
            }
            rules.rules.append(rule)
        }
        return rules
    }

    /// One `bans.kernel*` key.
    func kernelBanKey(_ key: String, _ node: Node, into k: inout KernelBanConfig) {
        let p = "bans.\(key)"
        guard let s = string(node, p) else { return }
        func pick<E: RawRepresentable & CaseIterable>(_: E.Type) -> E? where E.RawValue == String {
            if let e = E(rawValue: s) { return e }
            report(node, p, "expected one of \(E.allCases.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        switch key {
        case "kernel":
            k.kind = pick(KernelBanConfig.Kind.self) ?? k.kind
            if k.kind == .nftables, !KernelBanConfig.nftablesInstalled {
                warn(node, p, "neither libnftables.so.1 nor the nft binary is installed here: bans will stay in user space (install the nftables package)")
            }
        case "kernel_on_exit": k.onExit = pick(KernelBanConfig.OnExit.self) ?? k.onExit
        case "kernel_ports": k.ports = pick(KernelBanConfig.Ports.self) ?? k.ports
        case "kernel_hook": k.hook = pick(KernelBanConfig.Hook.self) ?? k.hook
        case "kernel_table":
            if KernelBanConfig.isValidTableName(s) { k.table = s } else {
                report(node, p, "expected a table name of letters, digits and '_' (up to 32, starting with a letter)")
            }
        default: break
        }
    }

    /// Rules that need data nobody provides: ASN rules without `geoip.asn_db`, country rules
    /// without any country source.
    func crossCheckGeo(_ config: GatewayConfig, siteNodes: [Node], geoipNode: Node?) {
        let geo = config.geoip ?? GeoIPConfig()
        for (i, site) in config.sites.enumerated() where !site.geoRules.isEmpty {
            let node = i < siteNodes.count ? (siteNodes[i]["geo_rules"] ?? siteNodes[i]) : nil
            if site.geoRules.usesASN, geo.asnDB == nil {
                report(node, "sites[\(i)].geo_rules", "rules by network (asns) need an ASN database: set geoip.asn_db to a MaxMind DB file such as GeoLite2-ASN.mmdb")
            }
            if site.geoRules.usesCountry, geo.countryDB == nil, geo.torGeoIP == nil {
                report(
                    node ?? geoipNode, "sites[\(i)].geo_rules",
                    "rules by country need country data: install Debian's tor-geoipdb (/usr/share/tor/geoip) or set geoip.country_db to a MaxMind DB file"
                )
            }
        }
    }
}
