/// An ISO 3166-1 alpha-2 country code packed in two bytes (`"FR"` is `0x4652`), so a lookup result
/// and a rule's country set cost no string work on the hot path.
public struct CountryCode: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The two ASCII upper-case letters, first in the high byte.
    public let packed: UInt16

    /// The code for two ASCII bytes; nil unless both are letters (lower case is upper-cased).
    public init?(_ a: UInt8, _ b: UInt8) {
        func upper(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): return c
            case UInt8(ascii: "a")...UInt8(ascii: "z"): return c - 32
            default: return nil
            }
        }
        guard let x = upper(a), let y = upper(b) else { return nil }
        packed = UInt16(x) << 8 | UInt16(y)
    }

    /// A code from its packed form, already validated when it was stored.
    public init(packedValue: UInt16) { packed = packedValue }

    /// Parses two letters (any case); nil for anything else. Does not check the code is assigned.
    public init?(_ text: some StringProtocol) {
        let u = Array(text.utf8)
        guard u.count == 2 else { return nil }
        self.init(u[0], u[1])
    }

    public var description: String {
        String(decoding: [UInt8(packed >> 8), UInt8(packed & 0xFF)], as: UTF8.self)
    }

    public static func < (a: CountryCode, b: CountryCode) -> Bool { a.packed < b.packed }

    /// True for codes ISO 3166-1 assigns (officially assigned codes), plus `EU` and `AP` which
    /// DB-IP and MaxMind use for addresses registered to a region rather than a country, and `XK`
    /// (Kosovo, user-assigned but used by every geolocation vendor).
    package var isKnown: Bool { Self.known.contains(packed) }

    private static let known: Set<UInt16> = {
        let list = """
            AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
            CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR \
            GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO \
            JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR \
            MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO \
            RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV \
            TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW EU AP XK
            """
        return Set(list.split(separator: " ").compactMap { CountryCode($0)?.packed })
    }()
}
