import NIOCore
import NIOHTTP1
import RampartCore

/// Failed credentials are a signal (``CredentialFailures``). A login attempt (a POST to one of the
/// site's `credentials.login_routes`) or a request with an API key the site does not list is
/// marked, so that the origin's answer can say whether the credentials were wrong; a source, /24
/// or TLS fingerprint whose attempts kept failing is refused on those requests (429, before the
/// origin pays for another password hash) and takes a strike. Members and configured keys are
/// never asked: someone else's spraying does not lock them out.
enum CredentialPhase {
    static func run(_ request: inout RequestContext, loop: LoopContext, now: NIODeadline) -> PhaseResult {
        let site = request.site!
        let config = site.config.credentials
        guard config.enabled, request.member == nil, request.apiKey?.configured != true else { return .next }
        let unknownKey = request.apiKey != nil
        guard unknownKey || request.head.method == .POST else { return .next }
        if !unknownKey {
            let target = request.accepted.target
            let path = target.firstIndex(of: "?").map { target[..<$0] } ?? Substring(target)
            guard CredentialFailures.isLogin(method: request.head.method, path: path, config: config) else { return .next }
        }
        // A bearer token the origin keeps accepting is someone's own (`bearer_credentials`).
        if request.bearer, let credential = request.credential,
            loop.knownGoodCredentials.contains(credential, now: Int64(now.uptimeNanoseconds))
        {
            return .next
        }
        request.credentialAttempt = true
        return decide(&request, loop: loop, now: now)
    }

    /// Refuses a marked request from a blocked source, or (while the site is under attack) from a
    /// source the origin has not vouched for and without a clearance: a spray from thousands of
    /// fresh addresses is stopped before each address has failed on its own. Also run for a
    /// marked request that waited in an origin queue while its site started challenging.
    static func decide(_ request: inout RequestContext, loop: LoopContext, now: NIODeadline) -> PhaseResult {
        let site = request.site!
        let config = site.config.credentials
        let unknownKey = request.apiKey != nil
        let blocked = site.defence.credentialFailures.isBlocked(client: request.client, fingerprint: request.connection.fingerprint, now: Int64(now.uptimeNanoseconds))
        // A login from a browser that passed a challenge goes on (the challenge stage checks the
        // clearance); API software holds none, so an unknown key from a stranger is refused.
        let stranger = site.defence.mode == .underAttack && !loop.hasPriority(request.client, site: site.name, now: now)
            && (unknownKey || ChallengeRoutes.cookie(ChallengeRoutes.cookie, in: request.head.headers["cookie"]) == nil)
        guard blocked || stranger else { return .next }
        site.defence.traffic.limited += 1
        if loop.strike(request.client, reason: .credentialsFailed) { request.keepAlive = false }
        let retry = Int(config.blockFor.nanoseconds / 1_000_000_000)
        if !blocked { return .respond(.refusal(.credentialsFailed, retryAfter: 30, detail: "under attack: \(unknownKey ? "unknown API key" : "login") from an unknown source")) }
        return .respond(.refusal(.credentialsFailed, retryAfter: max(1, min(retry, 3600)), detail: unknownKey ? "unknown API key" : "login"))
    }

    /// The origin answered a marked request: wrong credentials count against the client.
    static func learn(_ request: RequestContext, response: HTTPResponseHead, loop: LoopContext, now: NIODeadline) {
        guard let site = request.site else { return }
        let config = site.config.credentials
        let code = Int(response.status.code)
        let location = (300..<400).contains(code) ? response.headers.first(name: "location") : nil
        // Attempts are counted when answered, like failures: counted on arrival, a burst let out
        // of the origin queue would dilute the failed share of the second it arrived in.
        site.defence.traffic.credentialAttempts += 1
        guard CredentialFailures.isFailure(status: code, location: location, config: config) else { return }
        site.defence.traffic.credentialFailures += 1
        if let scope = site.defence.credentialFailures.failed(client: request.client, fingerprint: request.connection.fingerprint, now: Int64(now.uptimeNanoseconds)) {
            loop.rejectionLog.log(reason: .credentialsFailed, client: request.client, detail: "failed credentials: \(scope.rawValue) blocked")
        }
    }
}
