import NIOCore
import RampartCore

/// Rate limits, per address, subnet, API key or fingerprint as the site's rules say. It also
/// establishes the identity queues and challenges use: the API key presented (looked up only on
/// sites that use keys) and the session credential (cookies named in the config, else those the
/// origin was seen to set; bearer tokens when enabled), and whether the request is a member's: a
/// session cookie the origin issued, bound by the gateway's companion (``SessionBinding``). A
/// member is limited per session at one person's rate (`challenge.clearance_rate`) instead of by
/// the site's rules: someone else's flood from the same address or subnet never refuses it.
///
/// A limited source loses its known-good standing and takes a strike toward a ban; the answer
/// follows the rule's action: 429, a closed connection, or a 429 held back (tarpit).
enum RateLimitPhase {
    /// Longest a tarpitted request is held before its 429.
    static let maxTarpit: TimeAmount = .seconds(5)

    static func run(_ request: inout RequestContext, loop: LoopContext, now: NIODeadline) -> PhaseResult {
        let site = request.site!
        let headers = request.head.headers
        request.apiKey = site.config.apiKeys.isEmpty && !site.config.bearerCredentials && !site.limiter.usesAPIKeys && !site.config.credentials.enabled
            ? nil : PresentedAPIKey.find(in: headers, configured: site.config.apiKeys)
        let sessionCookies = site.config.sessionCookies.isEmpty ? site.defence.learnedCookies : site.config.sessionCookies
        if !sessionCookies.isEmpty {
            request.credential = CredentialKey.find(in: headers, cookies: sessionCookies, bearer: false, apiKey: nil)
        }
        if request.credential == nil, site.config.bearerCredentials {
            request.credential = CredentialKey.find(in: headers, cookies: [], bearer: true, apiKey: request.apiKey)
            request.bearer = request.credential != nil
        }
        if request.credential != nil, !site.config.sessionCookies.isEmpty, !request.bearer {
            if let member = SessionBinding.member(in: headers["cookie"], names: site.config.sessionCookies, keys: &loop.keys, now: unixNow()) {
                // A member is one person wherever they connect from: limited per session, at one
                // person's rate, never by the address or subnet others share (and may flood from).
                request.member = member
                if case .limited(let retry) = site.defence.credentialBuckets.take(request.credential!, now: Int64(now.uptimeNanoseconds)) {
                    site.defence.traffic.clearanceLimited += 1
                    return .respond(.refusal(.clearanceLimited, retryAfter: retry, detail: "member session over one person's rate"))
                }
                return .next
            }
        }
        let verdict = site.limiter.check(
            client: request.client, method: request.head.method, target: request.accepted.target, apiKey: request.apiKey,
            fingerprint: request.connection.fingerprint, now: Int64(now.uptimeNanoseconds)
        )
        switch verdict {
        case .allowed(let shadowHits):
            for rule in shadowHits {
                loop.counters.shadowLimited += 1
                loop.rejectionLog.log(reason: .rateLimited, client: request.client, detail: "shadow rule \(rule) would have refused")
            }
            return .next
        case .limited(let rule, let action, let retryAfter):
            site.defence.traffic.limited += 1
            loop.knownGood.forget(request.client)
            if let credential = request.credential { loop.knownGoodCredentials.forget(credential) }
            // A source that keeps hitting the limit is banned: its connections are then refused at
            // accept, the cheapest "no" there is. This connection ends with this answer.
            if loop.strike(request.client, reason: .rateLimited) { request.keepAlive = false }
            switch action {
            case .reject:
                return .respond(.refusal(.rateLimited, retryAfter: retryAfter, detail: rule))
            case .close:
                return .close(.rateLimited, detail: "\(rule): connection closed")
            case .tarpit:
                // The client's connection (and its patience) pays, not the origin.
                request.keepAlive = false
                return .hold(.tarpit(delay: min(maxTarpit, .seconds(Int64(retryAfter))), rule: rule, retryAfter: retryAfter))
            }
        }
    }
}
