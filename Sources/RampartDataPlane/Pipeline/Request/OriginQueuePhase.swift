import NIOCore
import RampartCore

/// The origin queue: who goes first when the origin is saturated (or its learned limit is reached),
/// and whether a waiting request is decided again if its site starts challenging meanwhile. First
/// of all: people the site knows by name (members, holders of configured API keys, allow-listed
/// addresses). Then: clients that showed a valid clearance, known-good addresses (the origin
/// answered them well), clients whose own pages show a person (they load the pages' assets:
/// ``BehaviourScore/Standing/trusted``, known within seconds, before any mode change) and bearer
/// tokens the origin keeps accepting. Then everyone else.
enum OriginQueuePhase {
    /// True for people the site knows by name, served before everyone else: members, holders of
    /// configured API keys, allow-listed addresses. A botnet that keeps cookies holds thousands of
    /// clearances; it holds no member session, no key and no allow-listed address.
    static func first(_ request: RequestContext, loop: LoopContext) -> Bool {
        if request.member != nil || request.apiKey?.configured == true { return true }
        let allow = loop.config.source.knownGood.allow
        return !allow.isEmpty && allow.contains(request.client)
    }

    static func priority(_ request: RequestContext, loop: LoopContext, now: NIODeadline) -> Bool {
        request.cleared || request.member != nil || request.apiKey?.configured == true || loop.hasPriority(request.client, site: request.site?.name, now: now)
            || request.behaviour?.trusted == true
            || request.credential.map { loop.knownGoodCredentials.contains($0, now: Int64(now.uptimeNanoseconds)) } == true
    }

    /// True when the request, if it is still waiting when its site's mode rises, is decided again:
    /// it meets the challenge, or (a login or an unknown API key, even one that passed the
    /// elevated mode's check) the stricter credential rule for strangers under attack. A spray
    /// queued by the thousand while the site was elevated must not drain into the origin after
    /// it went under attack.
    static func recheck(_ request: RequestContext) -> Bool {
        request.credentialAttempt || (!request.challengeChecked && request.routed.config.challenge.enabled)
    }
}
