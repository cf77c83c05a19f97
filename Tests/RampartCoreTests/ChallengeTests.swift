import NIOHTTP1
import Testing

@testable import RampartCore

@Suite struct ClearanceTests {
    let secret = [UInt8](repeating: 42, count: 32)
    let client = IPAddress("203.0.113.7")!
    let agent = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"
    let now: Int64 = 1_800_000_000

    @Test func aSignedClearanceVerifiesForItsClientAndAgent() throws {
        var keys = SigningKeys(secret: secret)
        let c = Clearance.issue(level: .pow, client: client, now: now, ttl: 3600)
        let text = c.encode(keys: &keys, userAgent: agent, now: now)
        let back = try Clearance.verify(Substring(text), keys: &keys, client: IPAddress("203.0.113.200")!, userAgent: agent, now: now + 10).get()
        #expect(back == c)
    }

    @Test func forgedCopiedExpiredAndOtherAgentsFail() {
        var keys = SigningKeys(secret: secret)
        let text = Clearance.issue(level: .cookie, client: client, now: now, ttl: 600).encode(keys: &keys, userAgent: agent, now: now)
        func verify(_ t: String, _ ip: IPAddress = IPAddress("203.0.113.7")!, agent a: String? = nil, at: Int64? = nil) -> Clearance.Failure? {
            if case .failure(let f) = Clearance.verify(Substring(t), keys: &keys, client: ip, userAgent: a ?? agent, now: at ?? now) { return f }
            return nil
        }
        #expect(verify(text) == nil)
        // One character changed.
        var chars = Array(text)
        chars[10] = chars[10] == "A" ? "B" : "A"
        #expect(verify(String(chars)) == .forged)
        #expect(verify("not-a-cookie") == .forged)
        #expect(verify(text, agent: "curl/8.0") == .forged)
        #expect(verify(text, IPAddress("198.51.100.7")!) == .wrongSubnet)
        #expect(verify(text, at: now + 601) == .expired)
        // Signed with another secret.
        var other = SigningKeys(secret: [UInt8](repeating: 1, count: 32))
        let foreign = Clearance.issue(level: .cookie, client: client, now: now, ttl: 600).encode(keys: &other, userAgent: agent, now: now)
        #expect(verify(foreign) == .forged)
    }

    @Test func keysRotateWithAnOverlapWindow() {
        var keys = SigningKeys(secret: secret, rotation: 3600)
        let text = Clearance.issue(level: .cookie, client: client, now: now, ttl: 86_400).encode(keys: &keys, userAgent: agent, now: now)
        let ok = { (at: Int64) -> Bool in
            if case .success = Clearance.verify(Substring(text), keys: &keys, client: self.client, userAgent: self.agent, now: at) { return true }
            return false
        }
        #expect(ok(now + 3600))  // the next epoch still accepts the previous key
        #expect(!ok(now + 2 * 3600 + 1))  // two epochs later the key is retired
    }

    /// Found by the `clearance` fuzz target: a cookie has one spelling; the unused low bits of its
    /// last base64url character must be zero.
    @Test func aClearanceHasOneSpelling() {
        var keys = SigningKeys(secret: secret)
        let text = Clearance.issue(level: .pow, client: client, now: now, ttl: 3600).encode(keys: &keys, userAgent: agent, now: now)
        #expect(text.utf8.count % 4 != 0)  // a final character with spare bits
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        var accepted = 0
        for c in alphabet {
            let variant = String(text.dropLast()) + String(c)
            if case .success = Clearance.verify(Substring(variant), keys: &keys, client: client, userAgent: agent, now: now) { accepted += 1 }
        }
        #expect(accepted == 1)
    }

    @Test func aClearanceIsGoodOnlyFromItsOwnFamilyAndSubnet() throws {
        var keys = SigningKeys(secret: secret)
        func failure(_ text: String, _ ip: IPAddress) -> Clearance.Failure? {
            if case .failure(let f) = Clearance.verify(Substring(text), keys: &keys, client: ip, userAgent: agent, now: now) { return f }
            return nil
        }
        // Earned over IPv4: refused from IPv6 (an empty slot is never filled on first use).
        let v4Text = Clearance.issue(level: .pow, client: client, now: now, ttl: 3600).encode(keys: &keys, userAgent: agent, now: now)
        #expect(failure(v4Text, IPAddress("2001:db8:1:2::99")!) == .wrongSubnet)
        #expect(failure(v4Text, IPAddress("203.0.113.99")!) == nil)
        // Earned over IPv6: refused from any IPv4 /24, good from its own /64 only.
        let v6 = IPAddress("2001:db8:1:2::99")!
        let v6Text = Clearance.issue(level: .pow, client: v6, now: now, ttl: 3600).encode(keys: &keys, userAgent: agent, now: now)
        for ip in ["198.51.100.1", "203.0.113.7", "192.0.2.200"] {
            #expect(failure(v6Text, IPAddress(ip)!) == .wrongSubnet, "\(ip)")
        }
        #expect(failure(v6Text, IPAddress("2001:db8:1:2::1")!) == nil)
        #expect(failure(v6Text, IPAddress("2001:db8:9::1")!) == .wrongSubnet)
    }
}

@Suite struct ProofOfWorkTests {
    let client = IPAddress("192.0.2.10")!

    @Test func aSolvedChallengeVerifiesAndAWrongAnswerDoesNot() throws {
        var keys = SigningKeys(secret: [UInt8](repeating: 9, count: 32))
        let now: Int64 = 1_800_000_000
        let text = Stamp(kind: .pow, issued: now, parameter: 12, subnet: SubnetBinding.tag(client)).encode(keys: &keys)
        let stamp = try Stamp.verify(Substring(text), kind: .pow, keys: &keys, client: client, now: now + 2, maxAge: 600).get()
        #expect(stamp.parameter == 12)
        let answer = try #require(ProofOfWork.solve(challenge: text, difficulty: 12))
        #expect(ProofOfWork.check(challenge: Substring(text), answer: Substring(answer), difficulty: 12))
        #expect(ProofOfWork.zeroBits(challenge: Substring(text), answer: Substring(answer)) >= 12)
        // Some answer next to it almost surely fails at 12 bits; find one that does.
        let wrong = (0..<50).map { String(Int(answer)! + 1 + $0) }.first { !ProofOfWork.check(challenge: Substring(text), answer: Substring($0), difficulty: 12) }
        #expect(wrong != nil)
        #expect(!ProofOfWork.check(challenge: Substring(text), answer: "12a", difficulty: 1))
        // A ticket is not a challenge, a stale one expires, another subnet is refused.
        #expect(throws: Clearance.Failure.forged) { try Stamp.verify(Substring(text), kind: .wait, keys: &keys, client: client, now: now, maxAge: 600).get() }
        #expect(throws: Clearance.Failure.expired) { try Stamp.verify(Substring(text), kind: .pow, keys: &keys, client: client, now: now + 601, maxAge: 600).get() }
        #expect(throws: Clearance.Failure.wrongSubnet) {
            try Stamp.verify(Substring(text), kind: .pow, keys: &keys, client: IPAddress("192.0.3.10")!, now: now, maxAge: 600).get()
        }
    }

    @Test func usedNoncesAreRefusedInFixedMemory() {
        var n = RecentNonces(capacity: 16)
        let first = n.insert(1)
        let again = n.insert(1)
        #expect(first && !again)
        for i in 2...40 { _ = n.insert(UInt64(i)) }
        let recent = n.insert(40)
        let old = n.insert(1)  // long gone: its stamp has expired by then
        #expect(!recent && old)
    }
}

@Suite struct ChallengePolicyTests {
    @Test func whoIsChallengedInEachMode() {
        func d(_ mode: SiteMode, _ tier: ChallengeTier = .cookie, method: HTTPMethodName = .get, route: Bool = false, exempt: Bool = false,
               clearance: Clearance.Level? = nil, suspicious: Bool = false) -> ChallengeAction {
            ChallengePolicy.decide(mode: mode, tier: tier, method: method, exemptRoute: route, exempt: exempt, clearance: clearance, suspicious: suspicious)
        }
        #expect(d(.normal, suspicious: true) == .pass)
        #expect(d(.elevated) == .pass)
        #expect(d(.elevated, suspicious: true) == .challenge(.cookie))
        #expect(d(.underAttack) == .challenge(.cookie))
        #expect(d(.underAttack, .pow) == .challenge(.pow))
        #expect(d(.underAttack, .pow, clearance: .cookie) == .challenge(.pow))
        #expect(d(.underAttack, .pow, clearance: .wait) == .pass)
        #expect(d(.underAttack, clearance: .cookie) == .pass)
        #expect(d(.underAttack, route: true) == .pass)
        #expect(d(.underAttack, exempt: true) == .pass)
        #expect(d(.underAttack, method: .other) == .refuse)
        #expect(d(.underAttack, .pow, method: .other, clearance: .cookie) == .pass)
        #expect(d(.elevated, method: .other) == .pass)
    }

    @Test func routesAgentsAndReturnTargets() {
        let c = ChallengeConfig()
        #expect(ChallengePolicy.isExempt(path: "/api/v1/returns", config: c))
        #expect(ChallengePolicy.isExempt(path: "/.rampart/pow", config: c))
        #expect(!ChallengePolicy.isExempt(path: "/news", config: c))
        #expect(ChallengePolicy.isSuspiciousAgent(nil, config: c))
        #expect(ChallengePolicy.isSuspiciousAgent("python-requests/2.31", config: c))
        #expect(ChallengePolicy.isSuspiciousAgent("Mozilla/5.0 HeadlessChrome/120", config: c))
        #expect(!ChallengePolicy.isSuspiciousAgent("Mozilla/5.0 (Windows NT 10.0) Firefox/140.0", config: c))
        #expect(ChallengeRoutes.safeReturn("/a?b=1") == "/a?b=1")
        #expect(ChallengeRoutes.safeReturn("//evil.example/") == "/")
        #expect(ChallengeRoutes.safeReturn("https://evil.example/") == "/")
        #expect(ChallengeRoutes.safeReturn(nil) == "/")
        #expect(ChallengeRoutes.parameter("r", in: "/.rampart/pow?c=x&r=%2Fnews%3Fp%3D2") == "/news?p=2")
        #expect(ChallengeRoutes.cookie("__rampart", in: ["a=1; __rampart=XYZ; b=2"]) == "XYZ")
        #expect(ChallengeRoutes.cookie("__rampart", in: ["__rampartx=1"]) == nil)
    }

    @Test func theGatewaysCookieIsNotForwarded() {
        var h = HTTPHeaders([("Cookie", "a=1; __rampart=XYZ; b=2"), ("Cookie", "__rampart=Q")])
        ChallengeRoutes.stripClearanceCookie(&h)
        #expect(h["cookie"] == ["a=1; b=2"])
        var untouched = HTTPHeaders([("Cookie", "sessionid=1")])
        ChallengeRoutes.stripClearanceCookie(&untouched)
        #expect(untouched["cookie"] == ["sessionid=1"])
    }

    @Test func pagesAreSelfContainedAndInTheReadersLanguage() {
        #expect(ChallengePage.language(acceptLanguage: "lt-LT,lt;q=0.9,en;q=0.8") == .lt)
        #expect(ChallengePage.language(acceptLanguage: "en-GB,en;q=0.9,lt;q=0.5") == .en)
        #expect(ChallengePage.language(acceptLanguage: "de-DE") == .en)
        #expect(ChallengePage.language(acceptLanguage: nil) == .en)
        let page = ChallengePage.proofOfWork(
            language: .lt, challenge: "CHALLENGE", difficulty: 16, returnTo: "/naujienos?id=1", waitURL: "/.rampart/wait?r=%2F&t=T",
            waitSeconds: 5, requestID: "abc"
        )
        #expect(page.contains("<html lang=\"lt\">"))
        #expect(page.contains("Prašome palaukti"))
        #expect(page.contains("role=\"status\""))
        #expect(page.contains("<noscript><meta http-equiv=\"refresh\" content=\"5;url=/.rampart/wait?r=%2F&amp;t=T\">"))
        #expect(page.contains("r=/naujienos%3Fid%3D1&c=CHALLENGE&a="))
        #expect(!page.contains("http://") && !page.contains("https://") && !page.contains("src="))
    }

    /// The template (split once, filled per request) gives exactly the page rendered in one piece,
    /// escaping included, in both languages and with hostile values.
    @Test func theProofOfWorkTemplateRendersThePageExactly() {
        for language in [ChallengePage.Language.en, .lt] {
            for (returnTo, waitURL) in [("/a?b=1", "/.rampart/wait?r=%2Fa&t=T"), ("/x\"</script><b>'&\\ž", "/w?r=\"><script>&t=<&>")] {
                let template = ProofOfWorkTemplate(language: language, difficulty: 18, waitSeconds: 7)
                let filled = template.render(challenge: "C1-xyz_", returnTo: returnTo, waitURL: waitURL, requestID: "0123456789abcde")
                let direct = ChallengePage.proofOfWorkPage(
                    language: language, difficulty: 18, waitSeconds: 7, challenge: "C1-xyz_",
                    answerURLInScript: ChallengePage.escapeJS("\(ChallengeRoutes.pow)?r=\(PercentCoding.encode(returnTo))&c=C1-xyz_&a="),
                    waitURLInHTML: ErrorPage.escapeHTML(waitURL), requestID: "0123456789abcde"
                )
                #expect(filled == direct)
                #expect(!filled.contains("</script><b>") && !filled.contains("\"><script>"))
                #expect(!filled.unicodeScalars.contains { $0.value >= 0xE000 && $0.value <= 0xE003 })
            }
        }
    }
}
