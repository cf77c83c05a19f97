import Foundation
import Testing

@testable import RampartCore

@Suite struct GeoTests {
    static let v4Fixture = """
        # comment lines and blank lines are skipped

        16777216,16777471,AU
        16777472,16778239,CN
        2130706432,2130706687,FR
        2130706688,2130706943,??
        3232235520,3232301055,de
        """
    static let v6Fixture = """
        # IPv6
        2001:db8::,2001:db8:0:ffff:ffff:ffff:ffff:ffff,NL
        2001:db8:1::,2001:db8:1:ffff:ffff:ffff:ffff:ffff,??
        """

    static func table() throws -> TorGeoIPTable {
        try TorGeoIPTable(v4: Array(v4Fixture.utf8), v6: Array(v6Fixture.utf8))
    }

    @Test func torRangesAreFoundByBinarySearch() throws {
        let t = try Self.table()
        #expect(t.rangeCounts.v4 == 4)  // the ?? range is skipped
        #expect(t.rangeCounts.v6 == 1)
        #expect(t.country(IPAddress("1.0.0.0")!)?.description == "AU")
        #expect(t.country(IPAddress("1.0.0.255")!)?.description == "AU")
        #expect(t.country(IPAddress("1.0.1.0")!)?.description == "CN")
        #expect(t.country(IPAddress("127.0.0.7")!)?.description == "FR")
        #expect(t.country(IPAddress("127.0.1.7")!) == nil)  // ??
        #expect(t.country(IPAddress("192.168.0.1")!)?.description == "DE")  // lower case read as upper
        #expect(t.country(IPAddress("0.0.0.1")!) == nil)  // before the first range
        #expect(t.country(IPAddress("255.255.255.255")!) == nil)  // after the last
        #expect(t.country(IPAddress("1.0.4.0")!) == nil)  // in a gap
        #expect(t.country(IPAddress("2001:db8::1")!)?.description == "NL")
        #expect(t.country(IPAddress("2001:db8:1::1")!) == nil)
        #expect(t.country(IPAddress("::1")!) == nil)
    }

    @Test func ipv6TextIsReadLikeTheAddressParser() {
        for text in ["::", "::1", "2001:db8::", "2001:db8:0:ffff:ffff:ffff:ffff:ffff", "fe80::1:2", "1::", "a:b:c:d:e:f:1:2", "2a0d:5600:0:1::"] {
            let parsed = Array(text.utf8).withUnsafeBufferPointer { TorGeoIPTable.ipv6($0, 0, $0.count) }
            #expect(parsed == IPAddress(text), "\(text)")
        }
        for bad in ["1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", ":1", "1:", "1.2.3.4", "g::", "1:2:3:4:5:6:7"] {
            #expect(Array(bad.utf8).withUnsafeBufferPointer { TorGeoIPTable.ipv6($0, 0, $0.count) } == nil, "\(bad)")
        }
    }

    @Test func unsortedRangesAreSorted() throws {
        let t = try TorGeoIPTable(v4: Array("3232235520,3232301055,DE\n16777216,16777471,AU\n".utf8), v6: [])
        #expect(t.country(IPAddress("1.0.0.1")!)?.description == "AU")
        #expect(t.country(IPAddress("192.168.1.1")!)?.description == "DE")
    }

    @Test func malformedLinesNameTheirLine() {
        #expect(throws: GeoDataError.self) { try TorGeoIPTable(v4: Array("1,2,AU\nnot a line\n".utf8), v6: []) }
        do {
            _ = try TorGeoIPTable(v4: Array("# c\n1,2,AU\n5,4,FR\n".utf8), v6: [], v4Name: "geoip")
            Issue.record("accepted a range whose end is before its start")
        } catch {
            #expect(error.message.hasPrefix("geoip:2:"), "\(error.message)")
        }
        #expect(throws: GeoDataError.self) { try TorGeoIPTable(v4: Array("99999999999,2,AU\n".utf8), v6: []) }
        #expect(throws: GeoDataError.self) { try TorGeoIPTable(v4: [], v6: Array("2001:db8::,1.2.3.4,NL\n".utf8)) }
        #expect(throws: GeoDataError.self) { try TorGeoIPTable.load(v4Path: "/nonexistent/geoip", v6Path: nil) }
    }

    /// Debian's tor-geoipdb, when installed: every sampled line's first and last address is placed
    /// in that line's country, and a lookup costs well under a microsecond.
    @Test func debianTorGeoIPLoadsAndAnswers() throws {
        let path = GeoIPConfig.debianTorGeoIP
        guard FileManager.default.fileExists(atPath: path) else { return }
        let started = Date()
        let table = try TorGeoIPTable.load(v4Path: path, v6Path: path + "6")
        let loadSeconds = Date().timeIntervalSince(started)
        #expect(table.rangeCounts.v4 > 100_000)
        #expect(table.rangeCounts.v6 > 50_000)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("#") }
        var checked = 0
        for line in lines.enumerated().filter({ $0.offset % 997 == 0 }).map(\.element) {
            let f = line.split(separator: ",")
            guard f.count == 3, f[2] != "??", let first = UInt32(f[0]), let last = UInt32(f[1]) else { continue }
            #expect(table.country(IPAddress(v4: first))?.description == String(f[2]))
            #expect(table.country(IPAddress(v4: last))?.description == String(f[2]))
            checked += 1
        }
        #expect(checked > 100)
        // The measured loop reported in docs/edge-filters.md.
        let n = 1_000_000
        var x: UInt32 = 0x1234_5678
        var found = 0
        let t0 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<n {
            x = x &* 1_664_525 &+ 1_013_904_223
            if table.country(IPAddress(v4: x)) != nil { found += 1 }
        }
        let perLookup = Double(DispatchTime.now().uptimeNanoseconds - t0) / Double(n)
        var cache = GeoLookupCache(slots: 4096)
        let resolver = GeoResolver(countrySources: [TorGeoIPDatabase(table: table, sourceName: "tor")], asnSource: nil)
        let hot = (0..<1000).map { IPAddress(v4: 0x0500_0000 &+ UInt32($0) &* 7919) }
        let t1 = DispatchTime.now().uptimeNanoseconds
        for i in 0..<n { _ = cache.lookup(hot[i % hot.count]) { resolver.lookup($0) } }
        let perHit = Double(DispatchTime.now().uptimeNanoseconds - t1) / Double(n)
        print("tor-geoip: loaded \(table.rangeCounts.v4)+\(table.rangeCounts.v6) ranges in \(Int(loadSeconds * 1000)) ms; uncached lookup \(Int(perLookup)) ns, cached \(Int(perHit)) ns (\(found) of \(n) random addresses placed)")
        #expect(found > n / 2)
        #expect(cache.hits >= n - hot.count)
    }

    @Test func firstMatchingRuleDecides() {
        let fr = CountryCode("FR")!
        let de = CountryCode("DE")!
        let rules = GeoRules([
            GeoRule(asns: [64500], action: .allow),
            GeoRule(countries: [fr], action: .challenge),
            GeoRule(asns: [64501], action: .deny),
            GeoRule(anyCountry: true, action: .limit),
        ])
        #expect(rules.decide(country: fr, asn: 64500)?.action == .allow)
        #expect(rules.decide(country: fr, asn: 64501)?.action == .challenge)
        #expect(rules.decide(country: de, asn: 64501)?.action == .deny)
        #expect(rules.decide(country: de, asn: nil)?.rule == 3)
        #expect(rules.decide(country: nil, asn: nil)?.action == .limit)
        #expect(GeoRules([GeoRule(countries: [fr], action: .deny)]).decide(country: nil, asn: nil) == nil)
        #expect(rules.usesASN && rules.usesCountry)
    }

    @Test func countryCodes() {
        #expect(CountryCode("fr")?.description == "FR")
        #expect(CountryCode("F") == nil)
        #expect(CountryCode("F1") == nil)
        #expect(CountryCode("FR")!.isKnown)
        #expect(!CountryCode("XX")!.isKnown)
        #expect(!CountryCode("ZZ")!.isKnown)
    }

    @Test func cacheIsBoundedAndRight() {
        var cache = GeoLookupCache(slots: 100)
        #expect(cache.capacity == 128)
        var resolved = 0
        func resolve(_ ip: IPAddress) -> GeoInfo {
            resolved += 1
            return GeoInfo(country: CountryCode(packedValue: UInt16(ip.v4Value! & 0x3FFF) | 0x4000), asn: ip.v4Value! | 1)
        }
        // Many more addresses than slots: memory stays the same, every answer is the address's own.
        for round in 0..<3 {
            for i in 0..<10_000 {
                let ip = IPAddress(v4: UInt32(i))
                let info = cache.lookup(ip, resolve: resolve)
                #expect(info == resolve(ip), "round \(round) address \(i)")
                resolved -= 1
            }
        }
        #expect(cache.capacity == 128)
        #expect(cache.misses > 0)
        // A small hot set stays in the cache.
        let before = cache.misses
        for _ in 0..<100 { _ = cache.lookup(IPAddress(v4: 42), resolve: resolve) }
        #expect(cache.misses - before <= 1)
        // "Unknown" is cached as unknown.
        var empty = GeoLookupCache(slots: 16)
        #expect(empty.lookup(IPAddress("::1")!) { _ in GeoInfo() } == GeoInfo())
        #expect(empty.lookup(IPAddress("::1")!) { _ in Issue.record("not cached"); return GeoInfo() } == GeoInfo())
    }

    @Test func filterVerdicts() throws {
        let resolver = GeoResolver(countrySources: [TorGeoIPDatabase(table: try Self.table(), sourceName: "fixture")], asnSource: nil)
        var limit = GeoRule(countries: [CountryCode("DE")!], action: .limit)
        limit.ratePerSecond = 1
        limit.burst = 3
        let sites = [
            GeoRules([GeoRule(countries: [CountryCode("AU")!], action: .deny), GeoRule(countries: [CountryCode("CN")!], action: .challenge), limit]),
            GeoRules(),
        ]
        let filter = GeoFilter(resolver: resolver, sites: sites, loops: 1)
        #expect(filter.verdict(site: 0, client: IPAddress("1.0.0.9")!, now: 0) == .deny)
        #expect(filter.verdict(site: 0, client: IPAddress("1.0.1.9")!, now: 0) == .challenge)
        #expect(filter.verdict(site: 0, client: IPAddress("127.0.0.1")!, now: 0) == .pass)
        let de = IPAddress("192.168.7.7")!
        for _ in 0..<3 { #expect(filter.verdict(site: 0, client: de, now: 1) == .pass) }
        #expect(filter.verdict(site: 0, client: de, now: 1) == .limited(retryAfterSeconds: 1))
        // Another source of the same country has its own bucket.
        #expect(filter.verdict(site: 0, client: IPAddress("192.168.7.8")!, now: 1) == .pass)
        // A second later one token is back.
        #expect(filter.verdict(site: 0, client: de, now: 1_000_000_001) == .pass)
        // A site without rules costs no lookup.
        let misses = filter.cacheStats.misses
        #expect(filter.verdict(site: 1, client: IPAddress("10.9.9.9")!, now: 0) == .pass)
        #expect(filter.verdict(site: 7, client: IPAddress("10.9.9.9")!, now: 0) == .pass)
        #expect(filter.cacheStats.misses == misses)
    }

    // MARK: - Config

    static let base = """
        listeners: [{address: "127.0.0.1:8080"}]
        sites:
          - name: tax
            hosts: ["*"]
            origins: [{address: "127.0.0.1:9000"}]

        """

    static func issues(_ yaml: String) -> [ConfigIssue] {
        do {
            _ = try ConfigLoader.check(yaml: yaml, file: "geo.yaml")
            return []
        } catch {
            return error.issues
        }
    }

    @Test func geoRulesLoad() throws {
        let yaml = Self.base + """
                geo_rules:
                  - { countries: [FR, DE], action: challenge }
                  - { asns: [64500, AS64501], action: allow }
                  - { countries: ["*"], action: limit, rate: 2/s, burst: 5 }
            geoip:
              tor_geoip: off
              cache_size: 1000
            """
        // ASN rules need an ASN database; country rules need a country source.
        let found = Self.issues(yaml)
        #expect(found.contains { $0.key == "sites[0].geo_rules" && $0.message.contains("asn_db") })
        #expect(found.contains { $0.key == "sites[0].geo_rules" && $0.message.contains("country data") })
        #expect(found.allSatisfy { $0.line > 0 })

        let ok = Self.base + """
                geo_rules:
                  - { countries: [FR, DE], action: challenge }
                  - { countries: ["*"], action: limit, rate: 2/s, burst: 5 }
            bans:
              kernel: nftables
              kernel_table: rampart_test
              kernel_on_exit: flush
              kernel_ports: all
              kernel_hook: input
            """
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("geo-\(UUID()).txt").path
        try "16777216,16777471,AU\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let config = try ConfigLoader.load(yaml: ok + "\ngeoip: {tor_geoip: \(path)}\n", file: "geo.yaml")
        #expect(config.sites[0].geoRules.rules.count == 2)
        #expect(config.sites[0].geoRules.rules[0].countries == [CountryCode("FR")!, CountryCode("DE")!])
        #expect(config.sites[0].geoRules.rules[1].anyCountry)
        #expect(config.sites[0].geoRules.rules[1].ratePerSecond == 2)
        #expect(config.sites[0].geoRules.rules[1].burst == 5)
        #expect(config.geoip?.torGeoIP == path)
        #expect(config.kernelBans.kind == .nftables)
        #expect(config.kernelBans.table == "rampart_test")
        #expect(config.kernelBans.onExit == .flush)
        #expect(config.kernelBans.ports == .all)
        #expect(config.kernelBans.hook == .input)
        #expect(GatewayConfig(listeners: [], sites: []).kernelBans.kind == .off)
    }

    @Test func badGeoSettingsNameFileLineAndKey() {
        let yaml = Self.base + """
                geo_rules:
                  - { countries: [fr, ZZ, FRA], action: deny }
                  - { asns: [0, 4294967296, x], action: deny }
                  - { countries: [DE], action: block }
                  - { countries: [DE] }
                  - { countries: [DE], action: deny, rate: 2/s }
                  - { countries: [DE], action: limit }
                  - { action: deny }
                  - { countries: [DE], action: deny, colour: red }
            geoip:
              tor_geoip: /nonexistent/geoip
              country_db: /nonexistent/country.mmdb
            bans:
              kernel: iptables
              kernel_table: "bad name"
              kernel_on_exit: later
            """
        let found = Self.issues(yaml)
        let expected: [(Int, String)] = [
            (7, "sites[0].geo_rules[0].countries[0]"),
            (7, "sites[0].geo_rules[0].countries[1]"),
            (7, "sites[0].geo_rules[0].countries[2]"),
            (8, "sites[0].geo_rules[1].asns[0]"),
            (8, "sites[0].geo_rules[1].asns[1]"),
            (8, "sites[0].geo_rules[1].asns[2]"),
            (9, "sites[0].geo_rules[2].action"),
            (10, "sites[0].geo_rules[3].action"),
            (11, "sites[0].geo_rules[4].rate"),
            (12, "sites[0].geo_rules[5].rate"),
            (13, "sites[0].geo_rules[6].countries"),
            (14, "sites[0].geo_rules[7].colour"),
            (16, "geoip.tor_geoip"),
            (17, "geoip.country_db"),
            (19, "bans.kernel"),
            (20, "bans.kernel_table"),
            (21, "bans.kernel_on_exit"),
        ]
        let text = found.map(\.description).joined(separator: "\n")
        for (line, key) in expected {
            #expect(found.contains { $0.line == line && $0.key == key }, "missing \(key) at line \(line) in:\n\(text)")
        }
        #expect(text.contains("geo.yaml:7:"))
        #expect(found.contains { $0.key == "sites[0].geo_rules[0].countries[1]" && $0.message.contains("not an assigned") })
        if !maxMindDBAvailable {
            #expect(found.contains { $0.key == "geoip.country_db" && $0.message.contains("libmaxminddb-dev") })
        }
    }

    @Test func corruptMMDBIsAClearError() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("corrupt-\(UUID()).mmdb").path
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let found = Self.issues(Self.base + "geoip: {asn_db: \(path)}\n")
        #expect(found.count == 1)
        #expect(found.first?.key == "geoip.asn_db")
        if maxMindDBAvailable {
            #expect(found.first?.message.contains("cannot open the MaxMind DB file") == true, "\(found)")
        } else {
            #expect(found.first?.message.contains("libmaxminddb-dev") == true)
        }
        #expect(throws: GeoDataError.self) { try GeoResolver.load({ var g = GeoIPConfig(); g.asnDB = path; return g }()) }
    }
}
