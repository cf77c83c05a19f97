import NIOHTTP1

/// Header rewriting between client and origin: hop-by-hop headers out, forwarding headers in.
/// Each direction makes one pass over the headers to find what must go; removals (rare) scan again
/// only for names actually present.
public enum ForwardingHeaders {
    /// Headers that describe one hop and are never forwarded (RFC 9110 7.6.1), lowercase.
    static let hopByHop: [String] = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authenticate", "proxy-authorization",
    ]

    /// True for a hop-by-hop header name (any case).
    @inlinable
    static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: return name.equalsASCIICaseInsensitive("te")
        case 7: return name.equalsASCIICaseInsensitive("trailer") || name.equalsASCIICaseInsensitive("upgrade")
        case 10: return name.equalsASCIICaseInsensitive("connection") || name.equalsASCIICaseInsensitive("keep-alive")
        case 16: return name.equalsASCIICaseInsensitive("proxy-connection")
        case 17: return name.equalsASCIICaseInsensitive("transfer-encoding")
        case 18: return name.equalsASCIICaseInsensitive("proxy-authenticate")
        case 19: return name.equalsASCIICaseInsensitive("proxy-authorization")
        default: return false
        }
    }

    /// Adds to `names` a hop-by-hop header `name` and, for `Connection`, the headers its value names.
    static func collectHopByHop(name: String, value: String, into names: inout [String]) {
        names.append(name)
        guard name.utf8.count == 10, name.equalsASCIICaseInsensitive("connection") else { return }
        for token in value.split(separator: ",") {
            let t = token.trimmingASCIISpaces()
            if !t.isEmpty, !t.equalsASCIICaseInsensitive("close"), !t.equalsASCIICaseInsensitive("keep-alive") {
                names.append(String(t))
            }
        }
    }

    /// Removes hop-by-hop headers, and every header the `Connection` header names.
    public static func removeHopByHop(_ headers: inout HTTPHeaders) {
        var present: [String] = []
        for (name, value) in headers where isHopByHop(name) {
            collectHopByHop(name: name, value: value, into: &present)
        }
        for name in present { headers.remove(name: name) }
    }

    /// Prepares a client request's headers for the origin.
    ///
    /// - `X-Forwarded-For`: the client address appended to the chain when the peer is a trusted proxy,
    ///   otherwise replaced by the peer address (a client cannot plant addresses).
    /// - `X-Forwarded-Proto`, `X-Forwarded-Host`: kept from a trusted proxy, else set from this hop.
    /// - `Via`: this hop appended. `X-Request-Id`: set to the gateway's id.
    public static func prepareRequest(
        _ headers: inout HTTPHeaders,
        peer: String,
        peerIsTrusted: Bool,
        scheme: String,
        host: String?,
        requestID: String,
        version: HTTPVersion
    ) {
        // One pass: what is there that we must drop or extend?
        var remove: [String] = []
        var forwardedFor: String? = nil
        var hasProto = false
        var hasForwardedHost = false
        var via: String? = nil
        for (name, value) in headers {
            if isHopByHop(name) {
                collectHopByHop(name: name, value: value, into: &remove)
                continue
            }
            guard name.utf8.first == UInt8(ascii: "x") || name.utf8.first == UInt8(ascii: "X") || name.utf8.count == 3 else { continue }
            switch name.utf8.count {
            case 15 where name.equalsASCIICaseInsensitive("x-forwarded-for"):
                forwardedFor = forwardedFor.map { "\($0), \(value)" } ?? value
                remove.append(name)
            case 17 where name.equalsASCIICaseInsensitive("x-forwarded-proto"):
                hasProto = true
                if !peerIsTrusted { remove.append(name) }
            case 16 where name.equalsASCIICaseInsensitive("x-forwarded-host"):
                hasForwardedHost = true
                if !peerIsTrusted { remove.append(name) }
            case 12 where name.equalsASCIICaseInsensitive("x-request-id"):
                remove.append(name)
            case 3 where name.equalsASCIICaseInsensitive("via"):
                via = via.map { "\($0), \(value)" } ?? value
                remove.append(name)
            default:
                break
            }
        }
        for name in remove { headers.remove(name: name) }
        if peerIsTrusted, let chain = forwardedFor {
            headers.add(name: "X-Forwarded-For", value: "\(chain), \(peer)")
        } else {
            headers.add(name: "X-Forwarded-For", value: peer)
        }
        if !(peerIsTrusted && hasProto) { headers.add(name: "X-Forwarded-Proto", value: scheme) }
        if !(peerIsTrusted && hasForwardedHost), let host { headers.add(name: "X-Forwarded-Host", value: host) }
        let hop = version == .http1_1 ? "1.1 rampart" : "\(version.major).\(version.minor) rampart"
        headers.add(name: "Via", value: via.map { "\($0), \(hop)" } ?? hop)
        headers.add(name: "X-Request-Id", value: requestID)
    }

    /// Prepares an origin response's headers for the client.
    public static func prepareResponse(_ headers: inout HTTPHeaders) {
        removeHopByHop(&headers)
    }
}

extension StringProtocol {
    /// ASCII case-insensitive equality with a lowercase literal, without allocating.
    @inlinable
    public func equalsASCIICaseInsensitive(_ lowercase: String) -> Bool {
        let a = self.utf8
        let b = lowercase.utf8
        guard a.count == b.count else { return false }
        var i = b.startIndex
        for byte in a {
            let lower = (byte >= 0x41 && byte <= 0x5A) ? byte | 0x20 : byte
            if lower != b[i] { return false }
            i = b.index(after: i)
        }
        return true
    }
}
