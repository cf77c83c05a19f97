/// How incident reports name the attack's sources, and who sends them (`reports:` in the config).

/// How attack sources appear in incident reports (`reports.sources`).
///
/// The default is `full`: a report goes to the CSIRT, which needs addresses to act on (block lists,
/// abuse notices to the networks they belong to), and NIS2 Art. 23 asks for indicators of
/// compromise. Only the attack's heaviest sources are ever kept in an incident; legitimate users'
/// addresses are not recorded at all. `subnet` gives the /24 (IPv4) or /64 (IPv6) instead, and
/// `hashed` replaces each address with a keyed pseudonym that only the gateway's operator can
/// match back (HMAC-SHA-256 under a key derived from the state folder's signing key).
public enum SourceDisclosure: String, Sendable, Equatable, CaseIterable, Codable {
    case full
    case subnet
    case hashed
}

/// The `reports:` section: what the gateway puts in NIS2 incident reports.
public struct ReportConfig: Sendable, Hashable {
    /// How attack sources appear (`reports.sources`).
    public var sources: SourceDisclosure = .full
    /// The entity that reports (`reports.organisation`); nil leaves a marked blank for the operator.
    public var organisation: String? = nil
    /// The entity's NIS2 sector, a value of the MISP `nis2:impact-sectors-impacted` predicate
    /// (`reports.sector`); nil leaves a marked blank.
    public var sector: String? = nil

    /// A section with these values (the defaults are what a config without `reports:` gets).
    public init(sources: SourceDisclosure = .full, organisation: String? = nil, sector: String? = nil) {
        self.sources = sources
        self.organisation = organisation
        self.sector = sector
    }
}

/// The values of the MISP `nis2` taxonomy (github.com/MISP/misp-taxonomies, nis2/machinetag.json,
/// version 5) that reports use. Only machine tags that exist there are ever emitted.
package enum NIS2Taxonomy {
    /// `nis2:impact-sectors-impacted` values.
    package static let sectors = [
        "energy", "transport", "banking", "financial", "health", "drinking-water", "waste-water", "digital-infrastructure",
        "ict-services", "public-administration", "space", "courier", "waste-management", "chemical", "food", "manufacturing",
        "digital-providers", "research",
    ]
    /// `nis2:nature-root-cause` values.
    package static let rootCauses = ["system-failures", "natural-phenomena", "human-errors", "malicious-actions", "third-party-failures"]
    /// `nis2:nature-severity` values.
    package static let natureSeverities = ["high", "medium", "low"]

    /// The machine tag `nis2:PREDICATE="VALUE"`.
    package static func tag(_ predicate: String, _ value: String) -> String { "nis2:\(predicate)=\"\(value)\"" }
}
