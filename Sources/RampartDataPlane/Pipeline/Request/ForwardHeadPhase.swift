import NIOCore
import NIOHTTP1
import RampartCore

/// The forward head: the one request the origin parses. It carries the normalised target and host
/// every phase saw, the one framing decided by ``FramingPhase``, the routed `Host`, the client in
/// `X-Forwarded-For` and `X-Real-IP`, and none of the hop-by-hop, identity and routing-override
/// headers (``ForwardingHeaders/forwardedHead(_:accepted:hop:fallbackHost:policy:upgrade:)``) nor
/// the gateway's clearance cookie. Only WebSocket upgrades are passed on.
enum ForwardHeadPhase {
    static func run(_ request: inout RequestContext, loop: LoopContext) -> PhaseResult {
        let site = request.routed
        let facts = request.connection
        let head = request.head
        request.upgrade = upgradeRequested(head)
        var forwarded = ForwardingHeaders.forwardedHead(
            head,
            accepted: request.accepted,
            hop: ForwardingHeaders.Hop(
                peer: facts.peerText, client: request.client == facts.peer ? facts.peerText : request.client.description,
                peerIsTrusted: loop.config.trusted.contains(facts.peer), scheme: facts.scheme, requestID: request.id, version: head.version
            ),
            fallbackHost: request.accepted.host == nil ? fallbackHost(site.config) : "",
            policy: site.config.requestHeaders,
            upgrade: request.upgrade
        )
        ChallengeRoutes.stripClearanceCookie(&forwarded.headers)
        request.forwardHead = forwarded
        return .next
    }

    /// The protocol a request asks to upgrade to, when it does so properly (GET over HTTP/1.1,
    /// `Upgrade: websocket`, and `upgrade` among the `Connection` tokens). WebSocket is the only
    /// upgrade passed on: after a 101 the connection is a byte tunnel that no phase sees, and an
    /// `h2c` upgrade would let the client's next bytes reach the origin as unchecked requests.
    static func upgradeRequested(_ head: HTTPRequestHead) -> String? {
        guard head.method == .GET, head.version == .http1_1, let proto = head.headers.first(name: "upgrade"),
            Substring(proto).trimmingASCIISpaces().equalsASCIICaseInsensitive("websocket")
        else { return nil }
        for value in head.headers["connection"] {
            for token in value.split(separator: ",") where token.trimmingASCIISpaces().equalsASCIICaseInsensitive("upgrade") {
                return proto
            }
        }
        return nil
    }

    /// The `Host` sent to the origin for a request that named none (HTTP/1.0): the site's first
    /// plain host name, else its first origin's address.
    static func fallbackHost(_ site: SiteConfig) -> String {
        if let name = site.hosts.first(where: { $0 != "*" && !$0.hasPrefix("*.") }) { return name }
        if let origin = site.origins.first { return "\(origin.address.host):\(origin.address.port)" }
        return "localhost"
    }
}
