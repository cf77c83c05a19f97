import NIOCore
import NIOHTTP1
import RampartCore

/// Response phase, first: what an origin's answer teaches the gateway. 502-504 count against the
/// origin's passive health, other answers for it. Below 400, the origin vouches for the client: an
/// address served a GET or HEAD goes first in queues when the origin is saturated (answers to
/// form posts do not count: a login form answers 200 to wrong passwords too), and a session
/// credential earns the same only when the origin accepted it. Cookie names the origin sets are
/// learned when the site names none.
enum OriginFeedbackPhase {
    static func run(_ request: RequestContext, response: HTTPResponseHead, pool: OriginPool?, loop: LoopContext, now: NIODeadline) {
        let code = response.status.code
        if code == 502 || code == 503 || code == 504 {
            pool?.health.requestFailed(now: now)
        } else {
            pool?.health.requestSucceeded()
        }
        guard code < 400 else { return }
        let at = Int64(now.uptimeNanoseconds)
        if request.head.method == .GET || request.head.method == .HEAD { loop.knownGood.recordSuccess(request.client, now: at) }
        if let credential = request.credential { loop.knownGoodCredentials.recordSuccess(credential, now: at) }
        if let site = request.site, site.config.sessionCookies.isEmpty, site.defence.learnedCookies.count < SiteDefence.maxLearned {
            site.defence.learnCookies(from: response.headers)
        }
    }
}
