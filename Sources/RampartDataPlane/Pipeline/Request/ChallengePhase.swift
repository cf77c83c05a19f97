import NIOCore
import RampartCore

/// The challenge, when the site's mode asks for it (elevated or under attack), or the client's TLS
/// fingerprint or its country or network is on the site's challenge list (then treated as under
/// attack with proof of work).
///
/// Who passes without a challenge: exempt paths; holders of configured API keys (when the site
/// says so) and allow-listed addresses; members (a session cookie the origin issued, bound by
/// ``SessionBinding``); a bearer token the origin keeps accepting, at one person's rate; a valid
/// clearance, at one person's rate (a clearance that keeps exceeding it is revoked on every loop),
/// unless under attack its holder, or without enough pages of its own its subnet or request
/// fingerprint, browses like a bot (``BehaviourScore``: then proof of work). Who is challenged: everyone else, with the cookie check, proof of work or the
/// no-JavaScript wait as the tier says; a client that keeps coming back without the cookie it was
/// given is struck and meets proof of work. See ``ChallengePolicy/decide``.
enum ChallengePhase {
    static func run(_ request: inout RequestContext, loop: LoopContext, now: NIODeadline) -> PhaseResult {
        let site = request.site!
        let forced = request.fingerprintVerdict == .challenge || request.geoVerdict == .challenge
        guard site.config.challenge.enabled else { return .next }
        guard site.defence.mode != .normal || forced else {
            observe(&request, defence: site.defence, now: now)
            return .next
        }
        return decide(&request, loop: loop, forced: forced, now: now)
    }

    /// Normal mode: nobody is challenged, but the behaviour of clients (by address) and of their
    /// groups is recorded, so that when an attack begins its clients are already known. Members,
    /// key holders and exempt paths are never scored.
    static func observe(_ request: inout RequestContext, defence: SiteDefence, now: NIODeadline) {
        guard request.head.method == .GET || request.head.method == .HEAD, request.member == nil, request.apiKey?.configured != true else { return }
        let target = request.accepted.target
        let path = target.firstIndex(of: "?").map { target[..<$0] } ?? Substring(target)
        if ChallengePolicy.isExempt(path: path, config: request.routed.config.challenge) { return }
        _ = behaviour(&request, path: path, clearance: nil, defence: defence, now: Int64(now.uptimeNanoseconds))
    }

    /// Records one GET in the site's ``BehaviourScore`` (once per request) and returns the
    /// client's standing.
    static func behaviour(_ request: inout RequestContext, path: Substring, clearance: IPAddress?, defence: SiteDefence, now: Int64) -> BehaviourScore.Standing {
        let target = request.accepted.target
        let headers = request.head.headers
        let query = target.firstIndex(of: "?").map { target[target.index(after: $0)...] }
        let referer = headers.first(name: "referer")
        let kind = RequestKind.classify(path: path, query: query, referer: referer, host: request.accepted.host)
        let fingerprint = RequestFingerprint.of(headers, httpMajor: request.head.version.major, ja4: request.connection.fingerprint)
        guard request.behaviour == nil else {
            // Decided again after waiting in an origin queue: recorded once already.
            let standing = defence.behaviour.standing(client: request.client, clearance: clearance, fingerprint: fingerprint, now: now)
            request.behaviour = standing
            return standing
        }
        let chain = kind.isPage ? PageChain.of(target: Substring(target), referer: referer, host: request.accepted.host) : nil
        let standing = defence.behaviour.observe(kind, client: request.client, clearance: clearance, fingerprint: fingerprint, chain: chain, now: now)
        if kind.isPage, standing.suspect { defence.traffic.suspects += 1 }
        request.behaviour = standing
        return standing
    }

    /// Decides the request as the stage would now (also for a request that waited in an origin
    /// queue while its site started challenging).
    static func decide(_ request: inout RequestContext, loop: LoopContext, forced: Bool, now: NIODeadline) -> PhaseResult {
        let site = request.site!
        let defence = site.defence
        let client = request.client
        let target = request.accepted.target
        let headers = request.head.headers
        let path = target.firstIndex(of: "?").map { target[..<$0] } ?? Substring(target)
        if ChallengePolicy.isExempt(path: path, config: site.config.challenge) { return .next }
        // An address the origin served well goes first in queues but is not excused from
        // challenges: a bot that got pages before the attack was detected would be, too.
        // Only keys the operator configured skip the challenge: an unknown key or bearer token earns
        // nothing (a flood would only need to add a random one).
        let allow = loop.config.source.knownGood.allow
        if (site.config.challenge.exemptKeyHolders && request.apiKey?.configured == true) || (!allow.isEmpty && allow.contains(client)) {
            return .next
        }
        let mono = Int64(now.uptimeNanoseconds)
        if request.member != nil {
            // A session the origin issued (``SessionBinding``): already limited per session.
            request.challengeChecked = true
            request.cleared = true
            return .next
        }
        // A bearer token the origin keeps accepting passes, at one person's rate. A session cookie
        // passes only when bound (above): the origin answering a page with a made-up cookie says
        // nothing about it.
        if request.bearer, let credential = request.credential, loop.knownGoodCredentials.contains(credential, now: mono) {
            if case .limited = defence.credentialBuckets.take(credential, now: mono) {
                defence.traffic.clearanceLimited += 1
                if loop.strike(client, reason: .clearanceLimited) { request.keepAlive = false }
                return .respond(.refusal(.clearanceLimited, retryAfter: 2))
            }
            request.challengeChecked = true
            request.cleared = true
            return .next
        }
        let unix = unixNow()
        let agent = headers.first(name: "user-agent") ?? ""
        var level: Clearance.Level?
        var clearanceKey: IPAddress?
        if let value = ChallengeRoutes.cookie(ChallengeRoutes.cookie, in: headers["cookie"]) {
            switch Clearance.verify(value, keys: &loop.keys, client: client, userAgent: agent, now: unix) {
            case .success(let clearance):
                if defence.revoked.isBanned(clearance.key, now: mono) {
                    failed(&request, loop: loop, detail: "revoked clearance")
                } else {
                    level = clearance.level
                    clearanceKey = clearance.key
                }
            case .failure(let failure):
                failed(&request, loop: loop, detail: "clearance cookie: \(failure.rawValue)")
            }
        }
        let method: HTTPMethodName = request.head.method == .GET || request.head.method == .HEAD ? .get : .other
        // Behaviour, not only rate (``BehaviourScore``): under attack a client whose own pages, or
        // (without enough of its own) whose subnet's or fingerprint's pages, show neither the pages'
        // sub-resources nor the site's links is challenged harder: proof of work, whose
        // no-JavaScript wait is longer. A clearance earned with work or a wait keeps passing until
        // its own pages speak (``BehaviourScore/minimumPages``: its budget), and is revoked when
        // they say bot.
        var suspect = false
        var standing: BehaviourScore.Standing?
        if method == .get {
            let st = behaviour(&request, path: path, clearance: clearanceKey, defence: defence, now: mono)
            standing = st
            if defence.mode == .underAttack, !forced, st.suspect {
                if let held = level, held > .cookie {
                    if st.ownSuspect {
                        // A proof of work or a wait does not buy a clearance to browse like a bot.
                        suspect = true
                        if let key = clearanceKey {
                            _ = defence.revoked.ban(key, now: mono)
                            loop.revokeEverywhere?(site.config.name, key)
                        }
                    }
                } else {
                    suspect = true
                }
                if suspect {
                    loop.rejectionLog.log(reason: .challengeRequired, client: client, detail: "behaviour: challenged harder")
                    level = nil
                    clearanceKey = nil
                }
            }
        }
        var noCookies = false
        if level == nil {
            defence.traffic.uncleared += 1
            noCookies = defence.keepsNoCookies(client, now: mono)
        } else {
            defence.traffic.cleared += 1
            defence.traffic.clearedTargets.add(hash: hashBytes(target.utf8))
        }
        let suspicious = noCookies || ChallengePolicy.isSuspiciousAgent(agent, config: site.config.challenge)
        let secure = request.connection.scheme == "https"
        let ttl = site.config.challenge.clearanceTTL.nanoseconds / 1_000_000_000
        var tier = forced || suspect ? ChallengeTier.pow : defence.tier
        if tier == .pow, !forced, level == .cookie, standing?.trusted == true {
            // A client that browses like a person by its own pages keeps passing with the cookie
            // check when the site-wide tier is proof of work.
            tier = .cookie
        }
        switch ChallengePolicy.decide(
            mode: forced || suspect ? .underAttack : defence.mode, tier: tier, method: method, exemptRoute: false, exempt: false,
            clearance: level, suspicious: suspicious
        ) {
        case .pass:
            request.challengeChecked = true
            if let key = clearanceKey {
                request.cleared = true
                loop.counters.clearedRequests += 1
                let (limited, revoke) = defence.clearanceOverLimit(key, now: mono)
                if limited {
                    defence.traffic.clearanceLimited += 1
                    if revoke {
                        loop.rejectionLog.log(reason: .clearanceLimited, client: client, detail: "clearance revoked")
                        // Revoked on every event loop, not only on the one that saw the abuse.
                        loop.revokeEverywhere?(site.config.name, key)
                    }
                    if loop.strike(client, reason: .clearanceLimited) { request.keepAlive = false }
                    return .respond(.refusal(.clearanceLimited, retryAfter: 2))
                }
            } else if method == .get {
                // Hand out a clearance with the page: clients that keep cookies show it from now on,
                // which is how the detector tells them from a flood that keeps none.
                let clearance = Clearance.issue(level: .cookie, client: client, now: unix, ttl: ttl)
                request.setCookie = defence.cookie(clearance, keys: &loop.keys, userAgent: agent, now: unix, secure: secure)
                loop.counters.clearancesIssued += 1
            }
            return .next
        case .refuse:
            return .respond(.refusal(.challengeRequired, retryAfter: 5))
        case .challenge(let tier):
            defence.traffic.challenged += 1
            loop.counters.challengesIssued += 1
            let language = ChallengePage.language(acceptLanguage: headers.first(name: "accept-language"))
            if tier == .cookie, !noCookies {
                let clearance = Clearance.issue(level: .cookie, client: client, now: unix, ttl: ttl)
                let cookie = defence.cookie(clearance, keys: &loop.keys, userAgent: agent, now: unix, secure: secure)
                loop.counters.clearancesIssued += 1
                // Back to the same, normalised target; never to another host (`//evil`, `/\evil`).
                let location = ChallengeRoutes.safeReturn(Substring(target))
                return .respond(.page(
                    status: .found, body: ChallengePage.redirect(language: language, location: location),
                    headers: [("Location", location), ("Set-Cookie", cookie), ("X-Rampart-Challenge", "cookie")], decision: "challenged"
                ))
            }
            if noCookies, loop.strike(client, reason: .challengeRequired) { request.keepAlive = false }
            let accept = headers.first(name: "accept")
            guard method == .get, accept == nil || accept!.contains("text/html") || accept!.contains("*/*") else {
                return .respond(.refusal(.challengeRequired, retryAfter: 5))
            }
            // A suspect without JavaScript still gets in, after a longer wait.
            let wait = min(60, site.config.challenge.waitSeconds * (suspect ? 3 : 1))
            return .respond(proofOfWorkPage(request, language: language, loop: loop, unix: unix, waitSeconds: wait))
        }
    }

    /// A clearance that failed its check: counted, logged, struck; the request goes on without one.
    private static func failed(_ request: inout RequestContext, loop: LoopContext, detail: String) {
        loop.counters.challengeFailures += 1
        loop.rejectionLog.log(reason: .challengeFailed, client: request.client, detail: detail)
        if loop.strike(request.client, reason: .challengeFailed) { request.keepAlive = false }
    }

    /// The proof-of-work page, with a signed challenge and a no-JavaScript wait ticket bound to the
    /// client's subnet.
    private static func proofOfWorkPage(
        _ request: RequestContext, language: ChallengePage.Language, loop: LoopContext, unix: Int64, waitSeconds: Int
    ) -> LocalAnswer {
        let site = request.routed
        let returnTo = request.accepted.target
        let subnet = SubnetBinding.tag(request.client)
        let challenge = Stamp(kind: .pow, issued: unix, parameter: UInt8(site.config.challenge.difficulty), subnet: subnet).encode(keys: &loop.keys)
        let ticket = Stamp(kind: .wait, issued: unix, parameter: UInt8(waitSeconds), subnet: subnet).encode(keys: &loop.keys)
        let waitURL = "\(ChallengeRoutes.wait)?r=\(PercentCoding.encode(returnTo))&t=\(ticket)"
        let page = loop.proofOfWorkTemplate(language: language, difficulty: site.config.challenge.difficulty, waitSeconds: waitSeconds)
            .render(challenge: challenge, returnTo: returnTo, waitURL: waitURL, requestID: request.id)
        return .page(status: .forbidden, body: page, headers: [("X-Rampart-Challenge", "pow")], decision: "challenged")
    }
}
