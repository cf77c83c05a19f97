import NIOHTTP1

/// Why the gateway refused a connection or a request. The raw value is a stable token used in
/// logs, counters and (later) metric labels; the set is closed, so labels stay bounded.
public enum RejectReason: String, Sendable, CaseIterable, Hashable {
    // Connection admission.
    case banned = "banned"
    case maxConnections = "max_connections"
    case maxConnectionsPerIP = "max_connections_per_ip"
    case proxyProtocolMissing = "proxy_protocol_missing"
    case proxyProtocolMalformed = "proxy_protocol_malformed"
    /// A PROXY protocol header from a peer outside the listener's `proxy_protocol_from` blocks.
    case proxyProtocolUntrusted = "proxy_protocol_untrusted"
    // Slow and idle clients.
    case headerTimeout = "header_timeout"
    case idleTimeout = "idle_timeout"
    case bodyTimeout = "body_timeout"
    case bodyTooSlow = "body_too_slow"
    case sendTimeout = "send_timeout"
    // Request framing and size.
    case badRequest = "bad_request"
    case headerTooLarge = "header_too_large"
    case uriTooLong = "uri_too_long"
    case bodyTooLarge = "body_too_large"
    case missingHost = "missing_host"
    case duplicateHost = "duplicate_host"
    case contentLengthWithTransferEncoding = "cl_and_te"
    case badContentLength = "bad_content_length"
    case badTransferEncoding = "bad_transfer_encoding"
    case badChunk = "bad_chunk"
    case badHeader = "bad_header"
    case badTarget = "bad_target"
    case methodNotAllowed = "method_not_allowed"
    case expectationFailed = "expectation_failed"
    // Rate limits.
    case rateLimited = "rate_limited"
    // Challenges.
    case challengeRequired = "challenge_required"
    case challengeFailed = "challenge_failed"
    case clearanceLimited = "clearance_limited"
    /// Too many failed logins or unknown API keys from this source, subnet or TLS fingerprint.
    case credentialsFailed = "failed_credentials"
    // HTTP/2.
    case http2Flood = "http2_flood"
    case tlsHandshakeLimited = "tls_handshake_limited"
    /// Not a TLS ClientHello, a malformed one, or none within the header timeout.
    case tlsMalformed = "tls_malformed"
    /// The client's JA4 TLS fingerprint is on the site's deny list.
    case fingerprintDenied = "fingerprint_denied"
    /// The source's country or network is denied by the site's `geo_rules`.
    case geoDenied = "geo_denied"
    /// The source matches an operator's runtime deny rule (``OperatorRule``).
    case ruleDenied = "rule_denied"
    // Routing and origin.
    case unknownHost = "unknown_host"
    case originUnavailable = "origin_unavailable"
    case originTimeout = "origin_timeout"
    case originQueueFull = "origin_queue_full"
    case originError = "origin_error"

    /// The status a client gets for this reason (connection-level reasons close without a response).
    public var status: HTTPResponseStatus {
        switch self {
        case .banned, .maxConnections, .maxConnectionsPerIP, .proxyProtocolMissing, .proxyProtocolMalformed, .proxyProtocolUntrusted,
            .idleTimeout, .sendTimeout, .http2Flood, .tlsHandshakeLimited, .tlsMalformed:
            return .serviceUnavailable
        case .headerTimeout, .bodyTimeout, .bodyTooSlow: return .requestTimeout
        case .headerTooLarge: return .requestHeaderFieldsTooLarge
        case .uriTooLong: return .uriTooLong
        case .bodyTooLarge: return .payloadTooLarge
        case .methodNotAllowed: return .methodNotAllowed
        case .rateLimited, .challengeRequired, .clearanceLimited, .credentialsFailed: return .tooManyRequests
        case .challengeFailed, .fingerprintDenied, .geoDenied, .ruleDenied: return .forbidden
        case .expectationFailed: return .expectationFailed
        case .unknownHost: return .misdirectedRequest
        case .originUnavailable, .originQueueFull: return .serviceUnavailable
        case .originTimeout: return .gatewayTimeout
        case .originError: return .badGateway
        case .badRequest, .missingHost, .duplicateHost, .contentLengthWithTransferEncoding, .badContentLength,
            .badTransferEncoding, .badChunk, .badHeader, .badTarget:
            return .badRequest
        }
    }

    /// True when the connection must be closed after the error response (framing can no longer be
    /// trusted, or the client is being cut off).
    public var closesConnection: Bool {
        switch self {
        case .unknownHost, .originUnavailable, .originTimeout, .originQueueFull, .originError, .methodNotAllowed,
            .uriTooLong, .rateLimited, .challengeRequired, .challengeFailed, .clearanceLimited, .credentialsFailed, .fingerprintDenied, .geoDenied, .ruleDenied:
            return false
        default:
            return true
        }
    }

    /// True when the defence refused the client for what it did (limits, bans, failed checks,
    /// rules, malformed or slow requests), not because the origin or the gateway could not serve:
    /// such refusals name the client as an attack source in incident reports.
    public var blamesClient: Bool {
        switch self {
        case .unknownHost, .originUnavailable, .originTimeout, .originQueueFull, .originError, .maxConnections, .bodyTooLarge,
            .uriTooLong, .headerTooLarge, .methodNotAllowed, .expectationFailed:
            return false
        default:
            return true
        }
    }

    /// One sentence for the error page.
    public var explanation: String {
        switch self {
        case .unknownHost: return "This gateway does not serve the requested host name."
        case .originUnavailable, .originQueueFull: return "The site is busy or unavailable right now. Please try again in a moment."
        case .originTimeout: return "The site took too long to answer. Please try again in a moment."
        case .originError: return "The site could not answer this request."
        case .bodyTooLarge: return "The request body is larger than this site accepts."
        case .uriTooLong: return "The requested address is too long."
        case .headerTooLarge: return "The request headers are too large."
        case .headerTimeout, .bodyTimeout, .bodyTooSlow: return "The request was not received in time."
        case .methodNotAllowed: return "This method is not accepted here."
        case .rateLimited: return "Too many requests from your network. Please wait a moment and try again."
        case .expectationFailed: return "The Expect header is not supported."
        case .challengeRequired: return "The site is under heavy load. Please open the page in your browser first, then try again."
        case .challengeFailed: return "The browser check failed or expired. Please reload the page."
        case .clearanceLimited: return "Too many requests from this browser. Please wait a moment and try again."
        case .credentialsFailed: return "Too many failed sign-ins from your network. Please wait a few minutes and try again."
        case .geoDenied, .ruleDenied: return "This site does not accept requests from your network."
        default: return "The request could not be understood."
        }
    }
}

extension RejectReason {
    /// The refusal reason for what the HTTP/1.1 parser could not accept.
    public init(parserError error: HTTPParserError) {
        switch error {
        case .headerOverflow: self = .headerTooLarge
        case .invalidContentLength, .unexpectedContentLength: self = .badContentLength
        case .unknown: self = .badTransferEncoding
        case .invalidChunkSize: self = .badChunk
        case .invalidHeaderToken, .lfExpected, .strictModeAssertion, .invalidCharactersUsed: self = .badHeader
        case .invalidURL, .invalidPath, .invalidQueryString, .invalidHost, .invalidPort, .invalidFragment: self = .badTarget
        default: self = .badRequest
        }
    }
}

/// Request-head checks that run before anything is forwarded: size limits, framing ambiguity
/// (the request-smuggling defences), and target form. Pure: a head in, a verdict out.
public enum RequestChecks {
    /// What the checks found acceptable, for the handler to act on.
    public struct Accepted: Sendable, Equatable {
        /// The host to route on: the absolute-form authority when given, else the `Host` header.
        public var host: String?
        /// The origin-form target to forward (absolute-form is rewritten).
        public var target: String
        /// The declared body length; nil for chunked or no body.
        public var contentLength: Int?
        /// True when the body is chunked.
        public var chunked: Bool
        /// True when the client sent `Expect: 100-continue`.
        public var expectsContinue: Bool

        public init(host: String?, target: String, contentLength: Int? = nil, chunked: Bool = false, expectsContinue: Bool = false) {
            self.host = host
            self.target = target
            self.contentLength = contentLength
            self.chunked = chunked
            self.expectsContinue = expectsContinue
        }

        /// How the request's body is delimited: the one framing the forwarded request carries.
        public var framing: BodyFraming {
            if chunked { return .chunked }
            if let n = contentLength { return .length(n) }
            return .none
        }
    }

    /// How a request body is delimited (RFC 9112 6): the gateway decides it once, from the
    /// client's headers, and the forwarded request carries exactly this framing and no other.
    public enum BodyFraming: Equatable, Sendable {
        /// No body.
        case none
        /// `Content-Length: n` (n may be 0).
        case length(Int)
        /// `Transfer-Encoding: chunked`, length unknown.
        case chunked
    }

    /// Checks `head` against `limits`: framing first, then sizes.
    public static func check(_ head: HTTPRequestHead, limits: Limits) -> Result<Accepted, RejectReasonError> {
        switch framing(head) {
        case .failure(let e): return .failure(e)
        case .success(let accepted):
            if let reason = sizes(accepted, head: head, limits: limits) { return .failure(.init(reason)) }
            return .success(accepted)
        }
    }

    /// Size checks that need the site's limits (URI length, declared body length).
    public static func sizes(_ accepted: Accepted, head: HTTPRequestHead, limits: Limits) -> RejectReason? {
        if head.uri.utf8.count > limits.maxURIBytes { return .uriTooLong }
        if let n = accepted.contentLength, n > limits.maxBodyBytes { return .bodyTooLarge }
        return nil
    }

    /// Framing checks that need no configuration: the request-smuggling defences (one Host, one
    /// valid Content-Length, no Content-Length with Transfer-Encoding, only plain `chunked`), the
    /// method (a token; CONNECT and TRACE refused) and the request target's form. The target comes
    /// out in its one normal form (``RequestTarget``) and the host lower-cased, with the
    /// absolute-form authority winning over `Host` (RFC 9112 3.2.2): every rule, the cache key and
    /// the forwarded request see these same two values.
    public static func framing(_ head: HTTPRequestHead) -> Result<Accepted, RejectReasonError> {
        switch head.method {
        case .CONNECT, .TRACE:
            return .failure(.init(.methodNotAllowed))
        case .RAW(let name):
            // HTTP/1 parsers check the method; an HTTP/2 `:method` arrives as any string.
            guard isToken(name) else { return .failure(.init(.badRequest)) }
            if name.equalsASCIICaseInsensitive("track") { return .failure(.init(.methodNotAllowed)) }
        default:
            break
        }
        let isHTTP2 = head.version.major == 2

        var host: String? = nil
        var hostCount = 0
        var contentLength: Int? = nil
        var sawContentLength = false
        var transferEncoding: String? = nil
        var expectsContinue = false
        for (name, value) in head.headers {
            switch name.utf8.count {
            case 4 where name.equalsASCIICaseInsensitive("host"):
                hostCount += 1
                host = value
            case 14 where name.equalsASCIICaseInsensitive("content-length"):
                // A repeated Content-Length is refused even with equal values: peers disagree on it.
                guard !sawContentLength, let n = parseContentLength(value) else { return .failure(.init(.badContentLength)) }
                sawContentLength = true
                contentLength = n
            case 17 where name.equalsASCIICaseInsensitive("transfer-encoding"):
                if transferEncoding != nil { return .failure(.init(.badTransferEncoding)) }
                transferEncoding = value
            case 6 where name.equalsASCIICaseInsensitive("expect"):
                if value.equalsASCIICaseInsensitive("100-continue") {
                    expectsContinue = true
                } else {
                    return .failure(.init(.expectationFailed))
                }
            default:
                break
            }
        }
        if hostCount > 1 { return .failure(.init(.duplicateHost)) }
        if sawContentLength, transferEncoding != nil { return .failure(.init(.contentLengthWithTransferEncoding)) }
        var chunked = false
        if let te = transferEncoding {
            // Only plain "chunked" is accepted: lists and unknown codings are how smuggling starts.
            // Over HTTP/2 a client cannot send Transfer-Encoding (the codec refuses it); the one seen
            // here was added by the HTTP/2-to-HTTP/1 translation for a body of unknown length.
            guard Substring(te).trimmingASCIISpaces().equalsASCIICaseInsensitive("chunked"), head.version == .http1_1 || isHTTP2 else {
                return .failure(.init(.badTransferEncoding))
            }
            chunked = true
        }

        var target = head.uri
        if !target.hasPrefix("/") {
            if target == "*", head.method == .OPTIONS {
                // Server-wide OPTIONS: forwarded as is.
            } else if !isHTTP2, let (authority, path) = splitAbsoluteForm(target) {
                // The target's authority wins over Host (RFC 9112 3.2.2): routed, cached and
                // forwarded under that one name.
                host = authority
                hostCount = 1
                target = path
            } else {
                return .failure(.init(.badTarget))
            }
        }
        if target != "*" {
            switch RequestTarget.normalise(target) {
            case .success(let normal): target = normal
            case .failure: return .failure(.init(.badTarget))
            }
        }
        if hostCount == 0, head.version.major == 1, head.version.minor >= 1 { return .failure(.init(.missingHost)) }
        if let h = host {
            guard isPlausibleHost(h) else { return .failure(.init(.badHeader)) }
            host = normaliseHost(h)
        }
        return .success(Accepted(host: host, target: target, contentLength: contentLength, chunked: chunked, expectsContinue: expectsContinue))
    }

    /// A host name lower-cased, without a trailing dot before the port (`Example.ORG.:80` ->
    /// `example.org:80`). Already-normal names (nearly all) are returned as they are.
    static func normaliseHost(_ host: String) -> String {
        let u = host.utf8
        let hasUpper = u.contains { $0 >= 0x41 && $0 <= 0x5A }
        var h = hasUpper ? host.lowercased() : host
        if let colon = h.lastIndex(of: ":"), !h.hasSuffix("]"), h[..<colon].hasSuffix(".") {
            h.remove(at: h.index(before: colon))
        } else if h.hasSuffix("."), h.utf8.count > 1 {
            h.removeLast()
        }
        return h
    }

    /// True for an RFC 9110 token (a method or header name): at least one of `!#$%&'*+-.^_`|~`,
    /// digits and letters.
    public static func isToken(_ s: String) -> Bool {
        let u = s.utf8
        return !u.isEmpty && u.count <= 64 && u.allSatisfy(isTokenByte)
    }

    @inline(__always)
    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
            UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// A Content-Length value: digits only, at most 18 of them.
    static func parseContentLength(_ value: String) -> Int? {
        let v = value.utf8
        guard !v.isEmpty, v.count <= 18, v.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(value)
    }

    /// Splits `http://host[:port]/path?q` into authority and origin-form target.
    static func splitAbsoluteForm(_ uri: String) -> (String, String)? {
        let lower = uri.prefix(8).lowercased()
        let schemeLength: Int
        if lower.hasPrefix("http://") { schemeLength = 7 } else if lower.hasPrefix("https://") { schemeLength = 8 } else { return nil }
        let rest = uri.dropFirst(schemeLength)
        let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = rest[..<slash]
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        var path = String(rest[slash...])
        if path.isEmpty { path = "/" } else if path.hasPrefix("?") { path = "/" + path }
        return (String(authority), path)
    }

    /// Host header values: letters, digits, '-', '.', ':' and brackets only (no spaces, no userinfo).
    static func isPlausibleHost(_ host: String) -> Bool {
        let u = host.utf8
        return !u.isEmpty && u.count <= 260 && u.allSatisfy { b in
            (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39)
                || b == 0x2D || b == 0x2E || b == 0x3A || b == 0x5B || b == 0x5D || b == 0x5F
        }
    }
}

/// A ``RejectReason`` as an `Error`, for `Result`.
public struct RejectReasonError: Error, Equatable, Sendable {
    /// The reason.
    public let reason: RejectReason
    /// Wraps a reason.
    public init(_ reason: RejectReason) { self.reason = reason }
}

/// Checks of an HTTP/2 request's pseudo-headers that the HTTP/2-to-HTTP/1 translation would hide:
/// it keeps `host` over `:authority` and passes `:method` and `:path` on as they are. Pure.
public enum HTTP2RequestCheck {
    /// What to do with an HTTP/2 request.
    public enum Verdict: Equatable, Sendable {
        /// Pass it on; `declareChunked` when DATA may follow without a `content-length` on a
        /// method the translation does not frame (GET, HEAD, DELETE, ...): the body is then
        /// forwarded chunked instead of raw after the head.
        case pass(declareChunked: Bool)
        /// Refuse it with 400; the reason is logged.
        case refuse(String)
    }

    /// Decides on one request's header block.
    /// - Parameters:
    ///   - method: `:method`.
    ///   - path: `:path` (nil when absent).
    ///   - authority: `:authority` (nil when absent).
    ///   - hosts: every `host` header value.
    ///   - hasContentLength: a `content-length` header is present.
    ///   - endStream: the header block ends the stream (no body).
    public static func check(
        method: String, path: String?, authority: String?, hosts: [String], hasContentLength: Bool, endStream: Bool
    ) -> Verdict {
        guard RequestChecks.isToken(method) else { return .refuse("':method' is not a token") }
        guard let path, !path.isEmpty else { return .refuse("no ':path'") }
        // RFC 9113 8.3.1: origin form, or "*" for OPTIONS; an absolute target would be routed
        // under one name and carry another.
        guard path.hasPrefix("/") || (path == "*" && method == "OPTIONS") else { return .refuse("':path' is not in origin form") }
        if hosts.count > 1 { return .refuse("several 'host' headers") }
        if let authority, let host = hosts.first,
            RequestChecks.normaliseHost(authority) != RequestChecks.normaliseHost(host)
        {
            return .refuse("':authority' and 'host' differ")
        }
        if authority == nil, hosts.isEmpty { return .refuse("no ':authority' or 'host'") }
        switch method {
        case "GET", "HEAD", "DELETE", "CONNECT", "TRACE":
            return .pass(declareChunked: !endStream && !hasContentLength)
        default:
            return .pass(declareChunked: false)
        }
    }
}
