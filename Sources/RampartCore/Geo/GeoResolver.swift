#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if RAMPART_MAXMINDDB
import CMaxMindDB
#endif

/// What the gateway knows about a source address: its country and network. Two words; the hot
/// path passes it by value.
public struct GeoInfo: Hashable, Sendable {
    /// The country, nil when no database places the address.
    public var country: CountryCode?
    /// The autonomous system number, nil when unknown (or no ASN database is configured).
    public var asn: UInt32?

    public init(country: CountryCode? = nil, asn: UInt32? = nil) {
        self.country = country
        self.asn = asn
    }
}

/// A source of country (or network) data for addresses. Implementations are immutable after
/// loading and safe to share between event loops.
package protocol GeoDatabase: Sendable {
    /// A short name for messages and `rampart geo`, e.g. `tor-geoip` or the MMDB's type and path.
    var sourceName: String { get }
    /// The country of `address`, nil when this database does not place it.
    func country(_ address: IPAddress) -> CountryCode?
    /// The autonomous system number of `address`, nil when unknown.
    func asn(_ address: IPAddress) -> UInt32?
    /// The organisation holding the network of `address`, nil when unknown.
    func organisation(_ address: IPAddress) -> String?
}

extension GeoDatabase {
    package func asn(_ address: IPAddress) -> UInt32? { nil }
    package func organisation(_ address: IPAddress) -> String? { nil }
}

/// Tor's ranges as a ``GeoDatabase``.
package struct TorGeoIPDatabase: GeoDatabase {
    package let table: TorGeoIPTable
    package let sourceName: String
    package func country(_ address: IPAddress) -> CountryCode? { table.country(address) }
}

#if RAMPART_MAXMINDDB
extension MaxMindDatabase: GeoDatabase {
    package var sourceName: String { "\(databaseType) (\(path))" }
}
#endif

/// Where the gateway takes geolocation from (`geoip:` in the config).
package struct GeoIPConfig: Hashable, Sendable {
    /// A MaxMind DB file with `country.iso_code` (DB-IP Lite country, GeoLite2-Country).
    package var countryDB: String?
    /// A MaxMind DB file with `autonomous_system_number` (GeoLite2-ASN, DB-IP Lite ASN).
    package var asnDB: String?
    /// Tor's IPv4 ranges; nil turns them off.
    package var torGeoIP: String?
    /// Tor's IPv6 ranges (default: the IPv4 path with `6` appended, when that file exists).
    package var torGeoIP6: String?
    /// Slots of each event loop's lookup cache (a power of two is used).
    package var cacheSize = 4096

    /// Debian's `tor-geoipdb` location.
    package static let debianTorGeoIP = "/usr/share/tor/geoip"

    /// The defaults: Tor's ranges when Debian's `tor-geoipdb` is installed, nothing else.
    package init() {
        if fileExists(Self.debianTorGeoIP) {
            torGeoIP = Self.debianTorGeoIP
            if fileExists(Self.debianTorGeoIP + "6") { torGeoIP6 = Self.debianTorGeoIP + "6" }
        }
    }
}

func fileExists(_ path: String) -> Bool { access(path, R_OK) == 0 }

/// True when this build can read MaxMind DB files (it was built with libmaxminddb-dev present).
package let maxMindDBAvailable: Bool = {
    #if RAMPART_MAXMINDDB
    return true
    #else
    return false
    #endif
}()

/// What `rampart check` and the gateway say when an MMDB path is configured in a build without
/// libmaxminddb.
package let maxMindDBMissingMessage =
    "this rampart was built without libmaxminddb, so it cannot read MaxMind DB files: install libmaxminddb-dev (Debian/Ubuntu) and rebuild, or remove the setting (country rules then use Tor's geoip ranges)"

/// Every geolocation source of the gateway, loaded once and shared by the event loops: the
/// country comes from the first database that places the address (the operator's MMDB, then Tor's
/// ranges), the network from the ASN database.
package final class GeoResolver: Sendable {
    /// Country sources, in the order they are asked.
    package let countrySources: [any GeoDatabase]
    /// The ASN source, when configured.
    package let asnSource: (any GeoDatabase)?

    package init(countrySources: [any GeoDatabase], asnSource: (any GeoDatabase)?) {
        self.countrySources = countrySources
        self.asnSource = asnSource
    }

    /// Opens the databases `config` names. Throws with the file and reason on a missing or corrupt file.
    package static func load(_ config: GeoIPConfig) throws(GeoDataError) -> GeoResolver {
        var countries: [any GeoDatabase] = []
        var asn: (any GeoDatabase)? = nil
        #if RAMPART_MAXMINDDB
        if let path = config.countryDB { countries.append(try MaxMindDatabase(path: path)) }
        if let path = config.asnDB { asn = try MaxMindDatabase(path: path) }
        #else
        if config.countryDB != nil || config.asnDB != nil { throw GeoDataError(maxMindDBMissingMessage) }
        #endif
        if let v4 = config.torGeoIP {
            let table = try TorGeoIPTable.load(v4Path: v4, v6Path: config.torGeoIP6)
            countries.append(TorGeoIPDatabase(table: table, sourceName: "tor-geoip (\(v4)), IPFire Location data, CC BY-SA 4.0"))
        }
        return GeoResolver(countrySources: countries, asnSource: asn)
    }

    /// Country and network of `address` (no caching; see ``GeoLookupCache``).
    package func lookup(_ address: IPAddress) -> GeoInfo {
        var info = GeoInfo()
        for source in countrySources {
            if let c = source.country(address) {
                info.country = c
                break
            }
        }
        info.asn = asnSource?.asn(address)
        return info
    }

    /// Everything known about `address`, with the database each answer came from (for `rampart geo`).
    package func describe(_ address: IPAddress) -> (country: CountryCode?, countrySource: String?, asn: UInt32?, organisation: String?) {
        for source in countrySources {
            if let c = source.country(address) {
                return (c, source.sourceName, asnSource?.asn(address), asnSource?.organisation(address))
            }
        }
        return (nil, nil, asnSource?.asn(address), asnSource?.organisation(address))
    }
}
