import NIOHTTP1

/// The forwarded request: the one request head the origin parses, built from what the request
/// checks accepted (``RequestChecks/framing(_:)``). Entry point: ``ForwardingHeaders/forwardedHead(_:accepted:hop:fallbackHost:policy:upgrade:)``.
/// Property (fuzzed in `fuzz/`): encoded as HTTP/1.1 with the body the decided framing carries,
/// it parses as exactly one request with the method, normalised target, host and body the
/// gateway decided on.
extension ForwardingHeaders {
    /// Who is asking, as the gateway decided it, for the headers it adds.
    public struct Hop: Sendable {
        /// The connection's client address as text (the TCP peer or the PROXY protocol source).
        public var peer: String
        /// The client address the gateway decided on (after trusted proxies), as text.
        public var client: String
        /// The peer is a trusted proxy: its `X-Forwarded-*` chain is extended, not replaced.
        public var peerIsTrusted: Bool
        /// `http` or `https`.
        public var scheme: String
        /// The gateway's request id.
        public var requestID: String
        /// The client's HTTP version (for `Via`).
        public var version: HTTPVersion

        public init(peer: String, client: String, peerIsTrusted: Bool, scheme: String, requestID: String, version: HTTPVersion) {
            self.peer = peer
            self.client = client
            self.peerIsTrusted = peerIsTrusted
            self.scheme = scheme
            self.requestID = requestID
            self.version = version
        }
    }

    /// The request head the origin receives, built in one pass over the client's headers.
    ///
    /// - Target and `Host`: the normalised target and host the gateway routed, checked and cached
    ///   on (`accepted`); `fallbackHost` when the client sent none (HTTP/1.0). Always HTTP/1.1.
    /// - Framing: exactly the one the gateway decided (``RequestChecks/BodyFraming``), whatever
    ///   the method and whatever `Connection` nominated; `Content-Length: 0` for a POST, PUT or
    ///   PATCH without a body. No client `Content-Length`, `Transfer-Encoding` or `Expect` passes.
    /// - Hop-by-hop headers and the ones `Connection` names are dropped; an accepted protocol
    ///   upgrade (`upgrade`) is passed on as `Upgrade` + `Connection: Upgrade`.
    /// - Identity and routing-override headers in `policy.strip` are dropped; `X-Real-IP` and
    ///   `Forwarded` are set from the gateway's view when the policy says so.
    /// - `X-Forwarded-For`: the peer appended to the chain when the peer is a trusted proxy,
    ///   otherwise the peer alone (a client cannot plant addresses). `X-Forwarded-Proto`,
    ///   `X-Forwarded-Host`: kept from a trusted proxy, else set from this hop. `Via`: this hop
    ///   appended. `X-Request-Id`: the gateway's id.
    public static func forwardedHead(
        _ head: HTTPRequestHead,
        accepted: RequestChecks.Accepted,
        hop: Hop,
        fallbackHost: String,
        policy: RequestHeaderPolicy,
        upgrade: String? = nil
    ) -> HTTPRequestHead {
        // Names the client's Connection headers nominate (rare): dropped below.
        var nominated: [Substring] = []
        for (name, value) in head.headers where name.utf8.count == 10 && name.equalsASCIICaseInsensitive("connection") {
            for token in value.split(separator: ",") {
                let t = token.trimmingASCIISpaces()
                if !t.isEmpty { nominated.append(t) }
            }
        }
        var out = HTTPHeaders()
        out.reserveCapacity(head.headers.count + 8)
        var forwardedFor: String? = nil
        var hasProto = false
        var hasForwardedHost = false
        var via: String? = nil
        for (name, value) in head.headers {
            let length = name.utf8.count
            if isHopByHop(name) { continue }
            switch length {
            case 4 where name.equalsASCIICaseInsensitive("host"): continue
            case 14 where name.equalsASCIICaseInsensitive("content-length"): continue
            case 6 where name.equalsASCIICaseInsensitive("expect"): continue
            case 15 where name.equalsASCIICaseInsensitive("x-forwarded-for"):
                forwardedFor = forwardedFor.map { "\($0), \(value)" } ?? value
                continue
            case 17 where name.equalsASCIICaseInsensitive("x-forwarded-proto"):
                hasProto = true
                if !hop.peerIsTrusted { continue }
            case 16 where name.equalsASCIICaseInsensitive("x-forwarded-host"):
                hasForwardedHost = true
                if !hop.peerIsTrusted { continue }
            case 12 where name.equalsASCIICaseInsensitive("x-request-id"): continue
            case 3 where name.equalsASCIICaseInsensitive("via"):
                via = via.map { "\($0), \(value)" } ?? value
                continue
            default:
                break
            }
            if policy.strips(name) { continue }
            if !nominated.isEmpty, nominated.contains(where: { $0.utf8.count == length && name.equalsASCIICaseInsensitive($0.lowercased()) }) {
                continue
            }
            out.add(name: name, value: value)
        }
        out.add(name: "Host", value: accepted.host ?? fallbackHost)
        switch accepted.framing {
        case .chunked:
            out.add(name: "Transfer-Encoding", value: "chunked")
        case .length(let n):
            out.add(name: "Content-Length", value: String(n))
        case .none:
            if head.method == .POST || head.method == .PUT || head.method == .PATCH { out.add(name: "Content-Length", value: "0") }
        }
        if let upgrade {
            out.add(name: "Upgrade", value: upgrade)
            out.add(name: "Connection", value: "Upgrade")
        }
        if hop.peerIsTrusted, let chain = forwardedFor {
            out.add(name: "X-Forwarded-For", value: "\(chain), \(hop.peer)")
        } else {
            out.add(name: "X-Forwarded-For", value: hop.peer)
        }
        if !(hop.peerIsTrusted && hasProto) { out.add(name: "X-Forwarded-Proto", value: hop.scheme) }
        if !(hop.peerIsTrusted && hasForwardedHost), let host = accepted.host { out.add(name: "X-Forwarded-Host", value: host) }
        if policy.setRealIP { out.add(name: "X-Real-IP", value: hop.client) }
        if policy.setForwarded {
            let host = accepted.host ?? fallbackHost
            let forHost = hop.client.contains(":") ? "\"[\(hop.client)]\"" : hop.client
            out.add(name: "Forwarded", value: "for=\(forHost);proto=\(hop.scheme);host=\"\(host)\"")
        }
        let version = hop.version == .http1_1 ? "1.1 rampart" : "\(hop.version.major).\(hop.version.minor) rampart"
        out.add(name: "Via", value: via.map { "\($0), \(version)" } ?? version)
        out.add(name: "X-Request-Id", value: hop.requestID)
        return HTTPRequestHead(version: .http1_1, method: head.method, uri: accepted.target, headers: out)
    }

}
