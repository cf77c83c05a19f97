import RampartCore

/// Routing: the site that serves the request's (normalised) host, as this loop's runtime of it.
/// From here on the request keeps that runtime, whatever a reload does. A host no site serves
/// gets 421 and the connection stays open.
enum RoutingPhase {
    static func run(_ request: inout RequestContext, loop: LoopContext) -> PhaseResult {
        guard let index = loop.config.router.route(host: request.accepted.host), index < loop.sites.count else {
            return .respond(.refusal(.unknownHost, detail: request.accepted.host))
        }
        request.site = loop.sites[index]
        return .next
    }
}
