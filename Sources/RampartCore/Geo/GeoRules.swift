/// What a country or network rule does with a matching request.
package enum GeoAction: String, Sendable, Hashable, CaseIterable {
    /// Let it through; later geo rules are not looked at (an exception before a broader rule).
    case allow
    /// Refuse with 403, like a denied TLS fingerprint.
    case deny
    /// Send it through the challenge whatever the site's mode.
    case challenge
    /// Apply the rule's own, tighter, per-source rate limit (429 when over).
    case limit
}

/// One rule of `sites[].geo_rules`. It matches a request whose source is in one of `countries`
/// or in one of the networks `asns`.
package struct GeoRule: Hashable, Sendable {
    /// Countries the rule covers.
    package var countries: Set<CountryCode> = []
    /// True for `countries: ["*"]`: every source, placed or not.
    package var anyCountry = false
    /// Autonomous system numbers the rule covers.
    package var asns: Set<UInt32> = []
    package var action: GeoAction
    /// For `limit`: requests a second each source may send (whole gateway), and the burst on top.
    package var ratePerSecond: Double = 1
    package var burst: Double = 10

    package init(countries: Set<CountryCode> = [], anyCountry: Bool = false, asns: Set<UInt32> = [], action: GeoAction) {
        self.countries = countries
        self.anyCountry = anyCountry
        self.asns = asns
        self.action = action
    }

    /// True when the rule covers a source of `country` in network `asn`.
    @inline(__always)
    package func matches(_ info: GeoInfo) -> Bool {
        if anyCountry { return true }
        if let c = info.country, countries.contains(c) { return true }
        if let a = info.asn, asns.contains(a) { return true }
        return false
    }
}

/// A site's country and network rules, in config order: the first rule that matches decides.
package struct GeoRules: Hashable, Sendable {
    package var rules: [GeoRule] = []

    package init(_ rules: [GeoRule] = []) { self.rules = rules }

    /// True when the site has no rule (the hot path then skips the lookup).
    package var isEmpty: Bool { rules.isEmpty }
    /// True when a rule names a network (an ASN database is then required).
    package var usesASN: Bool { rules.contains { !$0.asns.isEmpty } }
    /// True when a rule names a country.
    package var usesCountry: Bool { rules.contains { !$0.countries.isEmpty } }

    /// The first rule matching a source of `country` in network `asn`, with its index; nil when none.
    package func decide(country: CountryCode?, asn: UInt32?) -> (rule: Int, action: GeoAction)? {
        let info = GeoInfo(country: country, asn: asn)
        for i in rules.indices where rules[i].matches(info) { return (i, rules[i].action) }
        return nil
    }
}
