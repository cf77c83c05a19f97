import RampartCore

/// Request admission, with the site's limits: the target's length and the declared body length.
/// A body too large ends the connection (its bytes are not read).
enum SizeLimitsPhase {
    static func run(_ request: inout RequestContext, loop: LoopContext) -> PhaseResult {
        guard let reason = RequestChecks.sizes(request.accepted, head: request.head, limits: request.routed.config.limits) else { return .next }
        if reason == .bodyTooLarge { request.keepAlive = false }
        return .respond(.refusal(reason))
    }
}
