import NIOCore
import NIOHTTP1
import RampartCore

/// Response phase, first: what an origin's answer teaches the gateway. 502-504 count against the
/// origin's passive health, other answers for it. Below 400, the origin vouches for the client: an
/// address served a GET or HEAD goes first in queues when the origin is saturated (answers to
/// form posts do not count: a login form answers 200 to wrong passwords too), and a session
/// credential earns the same only when the origin accepted it. Cookie names the origin sets are
/// learned when the site names none. A session cookie named in `session_cookies` that the origin
/// sets is bound with the gateway's companion cookie (``SessionBinding``): that is what makes its
/// holder a member.
enum OriginFeedbackPhase {
    static func run(_ request: inout RequestContext, response: HTTPResponseHead, pool: OriginPool?, loop: LoopContext, now: NIODeadline) {
        let code = response.status.code
        if code == 502 || code == 503 || code == 504 {
            pool?.health.requestFailed(now: now)
        } else {
            pool?.health.requestSucceeded()
        }
        if request.credentialAttempt { CredentialPhase.learn(request, response: response, loop: loop, now: now) }
        guard code < 400 else { return }
        if let site = request.site, !site.config.sessionCookies.isEmpty { bindSession(&request, response: response, site: site, loop: loop) }
        let at = Int64(now.uptimeNanoseconds)
        if request.head.method == .GET || request.head.method == .HEAD { loop.knownGood.recordSuccess(request.client, now: at) }
        if let credential = request.credential { loop.knownGoodCredentials.recordSuccess(credential, now: at) }
        if let site = request.site, site.config.sessionCookies.isEmpty, site.defence.learnedCookies.count < SiteDefence.maxLearned {
            site.defence.learnCookies(from: response.headers)
        }
    }

    /// A login (the origin set one of the site's `session_cookies`) binds the session with the
    /// gateway's companion cookie; a logout deletes the companion; a member's successful request
    /// renews a companion older than ``SessionBinding/refreshAfter``.
    private static func bindSession(_ request: inout RequestContext, response: HTTPResponseHead, site: SiteRuntime, loop: LoopContext) {
        let secure = request.connection.scheme == "https"
        let unix = unixNow()
        if response.headers.contains(name: "set-cookie"),
            let set = SessionBinding.originSet(in: response.headers["set-cookie"], names: site.config.sessionCookies)
        {
            switch set {
            case .issued(let name, let value):
                request.sessionCompanion = SessionBinding.setCookie(SessionBinding.sign(name: name, value: value, keys: &loop.keys, now: unix), secure: secure)
            case .cleared:
                request.sessionCompanion = SessionBinding.setCookie(nil, secure: secure)
            }
        } else if let member = request.member, unix - member.issued >= SessionBinding.refreshAfter {
            request.sessionCompanion = SessionBinding.setCookie(SessionBinding.sign(name: member.name, value: member.value, keys: &loop.keys, now: unix), secure: secure)
        }
    }
}
