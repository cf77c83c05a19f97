import NIOCore
import RampartCore

/// The gateway's own answer routes, whatever the site's mode: `/.rampart/pow` (a proof-of-work
/// answer) and `/.rampart/wait` (a no-JavaScript ticket). An answer is checked (signature, client
/// subnet, age, the work itself), redeemed once per gateway, and earns a clearance cookie and a
/// redirect back to a same-host path. A wrong, replayed or expired answer is counted, struck and
/// refused with 403.
enum ChallengeRoutesPhase {
    static func run(_ request: inout RequestContext, loop: LoopContext, now: NIODeadline) -> PhaseResult {
        let target = request.accepted.target
        guard target.utf8.count > 10, target.hasPrefix(ChallengeRoutes.prefix) else { return .next }
        let site = request.site!
        let client = request.client
        let path = target.firstIndex(of: "?").map { target[..<$0] } ?? Substring(target)
        let unix = unixNow()
        let returnTo = ChallengeRoutes.safeReturn(ChallengeRoutes.parameter("r", in: Substring(target)))
        let level: Clearance.Level
        switch path {
        case Substring(ChallengeRoutes.pow):
            guard let c = ChallengeRoutes.parameter("c", in: Substring(target)), let a = ChallengeRoutes.parameter("a", in: Substring(target)) else {
                return refuse(&request, loop: loop, detail: "incomplete answer")
            }
            switch Stamp.verify(c, kind: .pow, keys: &loop.keys, client: client, now: unix, maxAge: 600) {
            case .success(let stamp):
                guard ProofOfWork.check(challenge: c, answer: a, difficulty: Int(stamp.parameter)) else {
                    return refuse(&request, loop: loop, detail: "wrong proof-of-work answer")
                }
                guard loop.ledger.redeem(stamp.nonce) else {
                    return refuse(&request, loop: loop, detail: "replayed proof-of-work answer")
                }
                level = .pow
            case .failure(let f):
                return refuse(&request, loop: loop, detail: "proof-of-work challenge: \(f.rawValue)")
            }
        case Substring(ChallengeRoutes.wait):
            guard let t = ChallengeRoutes.parameter("t", in: Substring(target)) else {
                return refuse(&request, loop: loop, detail: "missing ticket")
            }
            switch Stamp.verify(t, kind: .wait, keys: &loop.keys, client: client, now: unix, maxAge: 900) {
            case .success(let stamp):
                let remaining = Int(stamp.issued + Int64(stamp.parameter) - unix)
                var early = remaining > 0
                if !early, case .limited = site.defence.waitBuckets.take(client.defaultSubnet, now: Int64(now.uptimeNanoseconds)) {
                    early = true  // too many tickets from this subnet right now: wait a little longer
                }
                if early {
                    let language = ChallengePage.language(acceptLanguage: request.head.headers.first(name: "accept-language"))
                    let page = ChallengePage.wait(language: language, waitURL: target, seconds: max(1, min(remaining, 60)), requestID: request.id)
                    return .respond(.page(status: .ok, body: page, headers: [("X-Rampart-Challenge", "wait")], decision: "challenged"))
                }
                guard loop.ledger.redeem(stamp.nonce) else {
                    return refuse(&request, loop: loop, detail: "replayed ticket")
                }
                level = .wait
            case .failure(let f):
                return refuse(&request, loop: loop, detail: "ticket: \(f.rawValue)")
            }
        default:
            return .respond(.refusal(.challengeFailed, detail: "unknown gateway route"))
        }
        let agent = request.head.headers.first(name: "user-agent") ?? ""
        let clearance = Clearance.issue(level: level, client: client, now: unix, ttl: site.config.challenge.clearanceTTL.nanoseconds / 1_000_000_000)
        let cookie = site.defence.cookie(clearance, keys: &loop.keys, userAgent: agent, now: unix, secure: request.connection.scheme == "https")
        loop.counters.clearancesIssued += 1
        return .respond(.page(status: .found, body: "", headers: [("Location", returnTo), ("Set-Cookie", cookie)], decision: "cleared"))
    }

    /// A wrong, replayed or expired answer: counted, struck, refused with 403 (logged once, by the refusal).
    private static func refuse(_ request: inout RequestContext, loop: LoopContext, detail: String) -> PhaseResult {
        loop.counters.challengeFailures += 1
        if loop.strike(request.client, reason: .challengeFailed) { request.keepAlive = false }
        return .respond(.refusal(.challengeFailed, detail: detail))
    }
}
