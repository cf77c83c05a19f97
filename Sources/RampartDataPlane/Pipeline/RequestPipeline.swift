import NIOCore
import RampartCore

/// The request phases, cheapest refusal first, in the order of the brief's shape of the system:
///
/// 1. ``ClientAddressPhase``: identity (the client behind trusted proxies)
/// 2. ``FramingPhase``: request admission (one framing, method, normalised target and host)
/// 3. ``RoutingPhase``: the site's runtime
/// 4. ``SizeLimitsPhase``: the site's size limits
/// 5. ``HTTPSRedirectPhase``
/// 6. ``AccessRulesPhase``: counted for detection; rules by fingerprint, country and network
/// 7. ``RateLimitPhase``: API key and session identity, rate limits
/// 8. ``CredentialPhase``: sources whose logins or API keys keep failing
/// 9. ``ChallengeRoutesPhase``: the gateway's answer routes
/// 10. ``ChallengePhase``: when the mode asks for it
/// 11. ``ForwardHeadPhase``: the request the origin will see
/// 12. ``CacheLookupPhase``: fresh, stale or coalesced answers
///
/// then the origin queue and the upstream (``OriginQueuePhase``, the connection's handler), and
/// the response phases (``OriginFeedbackPhase``, ``CacheFill``, ``ResponseHeadersPhase``).
///
/// Connection admission (ban list, connection caps) runs earlier, at accept (``AcceptGate``).
/// Each phase is a plain function over the request's context; they are called in sequence (no
/// existential dispatch), and the first that does not say `next` ends the run.
enum RequestPipeline {
    static func run(_ request: inout RequestContext, loop: LoopContext, now: NIODeadline) -> PhaseResult {
        var result = ClientAddressPhase.run(&request, loop: loop)
        if case .next = result { result = FramingPhase.run(&request, loop: loop) }
        if case .next = result { result = RoutingPhase.run(&request, loop: loop) }
        if case .next = result { result = SizeLimitsPhase.run(&request, loop: loop) }
        if case .next = result { result = HTTPSRedirectPhase.run(&request, loop: loop) }
        if case .next = result { result = AccessRulesPhase.run(&request, loop: loop, now: now) }
        if case .next = result { result = RateLimitPhase.run(&request, loop: loop, now: now) }
        if case .next = result { result = CredentialPhase.run(&request, loop: loop, now: now) }
        if case .next = result { result = ChallengeRoutesPhase.run(&request, loop: loop, now: now) }
        if case .next = result { result = ChallengePhase.run(&request, loop: loop, now: now) }
        if case .next = result { result = ForwardHeadPhase.run(&request, loop: loop) }
        if case .next = result { result = CacheLookupPhase.run(&request, loop: loop, now: now) }
        return result
    }
}
