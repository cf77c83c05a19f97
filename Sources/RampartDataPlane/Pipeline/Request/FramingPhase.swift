import RampartCore

/// Request admission: one unambiguous framing (the request-smuggling defences), a method that is a
/// token and not CONNECT/TRACE, and a well-formed target, normalised once for every later phase,
/// the cache key and the forwarded request (``RequestChecks/framing(_:)``). A malformed request is
/// refused, ends its connection and counts toward a ban like any other abuse.
enum FramingPhase {
    static func run(_ request: inout RequestContext, loop: LoopContext) -> PhaseResult {
        switch RequestChecks.framing(request.head) {
        case .failure(let e):
            // The body's framing is unknown: nothing after this head can be read.
            request.keepAlive = false
            _ = loop.strike(request.client, reason: e.reason)
            return .respond(.refusal(e.reason))
        case .success(let accepted):
            request.accepted = accepted
            request.hasBody = accepted.chunked || (accepted.contentLength ?? 0) > 0
            return .next
        }
    }
}
