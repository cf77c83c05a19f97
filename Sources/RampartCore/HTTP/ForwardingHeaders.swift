import NIOHTTP1

/// Header rewriting between client and origin: hop-by-hop headers out, forwarding headers in.
public enum ForwardingHeaders {
    /// Headers that describe one hop and are never forwarded (RFC 9110 7.6.1), lowercase.
    static let hopByHop: [String] = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authenticate", "proxy-authorization",
    ]

    /// Removes hop-by-hop headers, and every header the `Connection` header names.
    public static func removeHopByHop(_ headers: inout HTTPHeaders) {
        var named: [String] = []
        for value in headers[canonicalForm: "connection"] {
            let token = value.lowercased()
            if token != "close", token != "keep-alive" { named.append(String(token)) }
        }
        for name in hopByHop where headers.contains(name: name) { headers.remove(name: name) }
        for name in named { headers.remove(name: name) }
    }

    /// Prepares a client request's headers for the origin.
    ///
    /// - `X-Forwarded-For`: the client address appended to the chain when the peer is a trusted proxy,
    ///   otherwise replaced by the peer address (a client cannot plant addresses).
    /// - `X-Forwarded-Proto`, `X-Forwarded-Host`: kept from a trusted proxy, else set from this hop.
    /// - `Via`: this hop appended. `X-Request-Id`: set to the gateway's id.
    public static func prepareRequest(
        _ headers: inout HTTPHeaders,
        peer: IPAddress,
        peerIsTrusted: Bool,
        scheme: String,
        host: String?,
        requestID: String,
        version: HTTPVersion
    ) {
        removeHopByHop(&headers)
        let peerText = peer.description
        if peerIsTrusted, headers.contains(name: "x-forwarded-for") {
            let chain = headers[canonicalForm: "x-forwarded-for"].joined(separator: ", ")
            headers.replaceOrAdd(name: "X-Forwarded-For", value: "\(chain), \(peerText)")
        } else {
            headers.replaceOrAdd(name: "X-Forwarded-For", value: peerText)
        }
        if !(peerIsTrusted && headers.contains(name: "x-forwarded-proto")) {
            headers.replaceOrAdd(name: "X-Forwarded-Proto", value: scheme)
        }
        if !(peerIsTrusted && headers.contains(name: "x-forwarded-host")) {
            if let host { headers.replaceOrAdd(name: "X-Forwarded-Host", value: host) } else { headers.remove(name: "x-forwarded-host") }
        }
        let via = "\(version.major).\(version.minor) rampart"
        if let existing = headers.first(name: "via") {
            headers.replaceOrAdd(name: "Via", value: "\(existing), \(via)")
        } else {
            headers.add(name: "Via", value: via)
        }
        headers.replaceOrAdd(name: "X-Request-Id", value: requestID)
    }

    /// Prepares an origin response's headers for the client.
    public static func prepareResponse(_ headers: inout HTTPHeaders) {
        removeHopByHop(&headers)
    }
}
