import RampartCore

/// Plain HTTP for a site that wants HTTPS: a permanent redirect to the same host and normalised
/// target, nothing forwarded.
enum HTTPSRedirectPhase {
    static func run(_ request: inout RequestContext, loop: LoopContext) -> PhaseResult {
        guard request.routed.config.httpsRedirect, request.connection.scheme == "http", let host = request.accepted.host else { return .next }
        let name = host.split(separator: ":").first.map(String.init) ?? host
        return .respond(.page(status: .movedPermanently, body: "", headers: [("Location", "https://\(name)\(request.accepted.target)")], decision: "https_redirect"))
    }
}
