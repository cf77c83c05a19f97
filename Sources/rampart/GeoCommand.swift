import ArgumentParser
import RampartCore

/// `rampart geo ADDR`: what the gateway knows about an address and which country and network
/// rules would apply to it.
struct Geo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the country and network of an address, the database they come from, and the site rules that would match."
    )

    @Argument(help: "An IPv4 or IPv6 address.")
    var address: String

    @Option(name: .long, help: "YAML config file (its geoip section and sites' geo_rules); without it, Tor's geoip ranges when installed.")
    var config: String?

    func run() throws {
        guard let ip = IPAddress(address) else { throw ValidationError("'\(address)' is not an IPv4 or IPv6 address") }
        var geoip = GeoIPConfig()
        var sites: [SiteConfig] = []
        if let config {
            do {
                let checked = try ConfigLoader.check(path: config)
                geoip = checked.config.geoip ?? GeoIPConfig()
                sites = checked.config.sites
            } catch {
                printErr(error.description)
                printErr("\(config): \(error.issues.count) problem(s)")
                throw ExitCode(1)
            }
        }
        let resolver: GeoResolver
        do {
            resolver = try GeoResolver.load(geoip)
        } catch {
            printErr("error: \(error.message)")
            throw ExitCode(1)
        }
        if resolver.countrySources.isEmpty, resolver.asnSource == nil {
            printErr("no geolocation data: install Debian's tor-geoipdb, or give --config with geoip.country_db / geoip.asn_db")
            throw ExitCode(1)
        }
        let d = resolver.describe(ip)
        say("address: \(ip)")
        if let c = d.country {
            say("country: \(c) (from \(d.countrySource ?? "?"))")
        } else {
            say("country: unknown (\(resolver.countrySources.map(\.sourceName).joined(separator: "; ")))")
        }
        if let asnSource = resolver.asnSource {
            if let asn = d.asn {
                say("network: AS\(asn)\(d.organisation.map { " \($0)" } ?? "") (from \(asnSource.sourceName))")
            } else {
                say("network: unknown (from \(asnSource.sourceName))")
            }
        } else {
            say("network: unknown (no geoip.asn_db configured)")
        }
        for site in sites where !site.geoRules.isEmpty {
            if let match = site.geoRules.decide(country: d.country, asn: d.asn) {
                say("site \(site.name): geo_rules[\(match.rule)] matches: \(match.action.rawValue)")
            } else {
                say("site \(site.name): no geo rule matches")
            }
        }
    }
}
