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

    /// Adds to `names` a hop-by-hop header `name` and, for `Connection`, the headers its value
    /// names, except the ones that frame or route a message (`Host`, `Content-Length`): a client
    /// or origin that nominates them must not make the gateway drop them.
    static func collectHopByHop(name: String, value: String, into names: inout [String]) {
        names.append(name)
        guard name.utf8.count == 10, name.equalsASCIICaseInsensitive("connection") else { return }
        for token in value.split(separator: ",") {
            let t = token.trimmingASCIISpaces()
            if !t.isEmpty, !t.equalsASCIICaseInsensitive("close"), !t.equalsASCIICaseInsensitive("keep-alive"),
                !t.equalsASCIICaseInsensitive("host"), !t.equalsASCIICaseInsensitive("content-length")
            {
                names.append(String(t))
            }
        }
    }

    /// Removes hop-by-hop headers, and every header the `Connection` header names (never `Host` or
    /// `Content-Length`).
    public static func removeHopByHop(_ headers: inout HTTPHeaders) {
        var present: [String] = []
        for (name, value) in headers where isHopByHop(name) {
            collectHopByHop(name: name, value: value, into: &present)
        }
        for name in present { headers.remove(name: name) }
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
