import RampartCore

/// Identity, first part: who the client is. Behind a trusted proxy it is the address the proxy
/// forwarded for (`X-Forwarded-For`, read from the right past trusted hops); otherwise the TCP
/// peer or the PROXY protocol source. It runs before framing so that a malformed request counts
/// against the real client, not against the proxy in front.
enum ClientAddressPhase {
    static func run(_ request: inout RequestContext, loop: LoopContext) -> PhaseResult {
        let trusted = loop.config.trusted
        let peer = request.connection.peer
        if !trusted.isEmpty, trusted.contains(peer) {
            request.client = ClientAddressResolver.resolve(peer: peer, forwardedFor: request.head.headers["x-forwarded-for"], trusted: trusted)
        }
        return .next
    }
}
