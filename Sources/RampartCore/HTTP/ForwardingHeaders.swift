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

    /// Removes hop-by-hop headers, and every header the `Connection` header names (never `Host` or
    /// `Content-Length`). One pass to find whether anything must go (usually `Connection` and
    /// `Keep-Alive` from a keep-alive origin), then one pass into a new header list: no list of
    /// names is built and the shared storage is copied once, not once per removed name.
    public static func removeHopByHop(_ headers: inout HTTPHeaders) {
        var found = false
        var connection: String? = nil
        var connections = 0
        for (name, value) in headers where isHopByHop(name) {
            found = true
            // `Connection: keep-alive` (or `close`) names no other header: nothing to look up later.
            if name.utf8.count == 10, name.equalsASCIICaseInsensitive("connection"), namesOtherHeaders(value) {
                connection = value
                connections += 1
            }
        }
        guard found else { return }
        var kept = HTTPHeaders()
        kept.reserveCapacity(headers.count)
        for (name, value) in headers {
            if isHopByHop(name) { continue }
            if connections > 0, !frames(name), nominated(name, connection: connection, connections: connections, in: headers) { continue }
            kept.add(name: name, value: value)
        }
        headers = kept
    }

    /// True when a `Connection` value has a token other than `close` and `keep-alive`.
    private static func namesOtherHeaders(_ value: String) -> Bool {
        anyToken(of: value) { !$0.isEmpty && !$0.equalsASCIICaseInsensitive("keep-alive") && !$0.equalsASCIICaseInsensitive("close") }
    }

    /// `Host` and `Content-Length`: a `Connection` header that names them does not remove them.
    private static func frames(_ name: String) -> Bool {
        (name.utf8.count == 4 && name.equalsASCIICaseInsensitive("host"))
            || (name.utf8.count == 14 && name.equalsASCIICaseInsensitive("content-length"))
    }

    /// True when a `Connection` header names `name` (`connection` is its value when there is one).
    private static func nominated(_ name: String, connection: String?, connections: Int, in headers: HTTPHeaders) -> Bool {
        if connections == 1, let connection { return tokenList(connection, contains: name) }
        for (n, value) in headers where n.utf8.count == 10 && n.equalsASCIICaseInsensitive("connection") && namesOtherHeaders(value) {
            if tokenList(value, contains: name) { return true }
        }
        return false
    }

    /// True when the comma-separated `list` has `name` among its tokens (ASCII case-insensitive,
    /// spaces around tokens ignored), without allocating.
    static func tokenList(_ list: String, contains name: String) -> Bool {
        anyToken(of: list) { $0.utf8.count == name.utf8.count && asciiCaseInsensitiveEquals($0, name) }
    }

    /// True when `test` holds for one of the comma-separated tokens of `list` (spaces around each
    /// trimmed), without allocating.
    private static func anyToken(of list: String, _ test: (Substring) -> Bool) -> Bool {
        let utf8 = list.utf8
        var start = utf8.startIndex
        while start < utf8.endIndex {
            let stop = utf8[start...].firstIndex(of: UInt8(ascii: ",")) ?? utf8.endIndex
            if test(list[start..<stop].trimmingASCIISpaces()) { return true }
            start = stop < utf8.endIndex ? utf8.index(after: stop) : stop
        }
        return false
    }

    private static func asciiCaseInsensitiveEquals(_ a: Substring, _ b: String) -> Bool {
        for (x, y) in zip(a.utf8, b.utf8) {
            let lx = (x >= 0x41 && x <= 0x5A) ? x | 0x20 : x
            let ly = (y >= 0x41 && y <= 0x5A) ? y | 0x20 : y
            if lx != ly { return false }
        }
        return true
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
