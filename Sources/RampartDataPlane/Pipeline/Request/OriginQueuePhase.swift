import NIOCore
import RampartCore

/// The origin queue: who goes first when the origin is saturated, and whether a waiting request
/// is decided again if its site starts challenging meanwhile. First: clients that showed a valid
/// clearance, members (``SessionBinding``), holders of configured API keys, allow-listed and known-good addresses (the origin
/// answered them well), and sessions the origin keeps vouching for.
enum OriginQueuePhase {
    static func priority(_ request: RequestContext, loop: LoopContext, now: NIODeadline) -> Bool {
        request.cleared || request.member != nil || request.apiKey?.configured == true || loop.hasPriority(request.client, now: now)
            || request.credential.map { loop.knownGoodCredentials.contains($0, now: Int64(now.uptimeNanoseconds)) } == true
    }

    /// True when the request, if it is still waiting when its site starts challenging, meets the challenge.
    static func recheck(_ request: RequestContext) -> Bool {
        !request.challengeChecked && request.routed.config.challenge.enabled
    }
}
