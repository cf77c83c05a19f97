/// What the gateway does with request headers that carry a client's identity or a routing override
/// (`Forwarded`, `X-Real-IP`, `X-Original-URL`, `X-HTTP-Method-Override`, ...). An origin (or a
/// framework on it) that believes them would let any client pick its own address, path or method
/// past every rule the gateway applied. The gateway strips them and sets its own where it knows
/// the answer.
public struct RequestHeaderPolicy: Hashable, Sendable {
    /// Header names (lowercase) removed from every forwarded request.
    public var strip: [String] = RequestHeaderPolicy.defaultStrip
    /// Set `X-Real-IP` to the client address the gateway decided on (after PROXY protocol and
    /// trusted proxies), replacing whatever the client sent.
    public var setRealIP = true
    /// Set `Forwarded: for=...;proto=...;host=...` (RFC 7239) from the gateway's own view, replacing
    /// whatever the client sent. Off by default: `X-Forwarded-*` carry the same facts.
    public var setForwarded = false

    /// Identity and routing-override headers that frameworks and proxies are known to believe.
    public static let defaultStrip: [String] = [
        "forwarded", "x-real-ip", "x-original-url", "x-rewrite-url", "x-http-method-override",
        "x-http-method", "x-method-override", "x-original-host", "x-host", "x-forwarded-server",
        "x-forwarded-port", "x-forwarded-prefix", "x-forwarded-uri", "x-original-uri", "true-client-ip",
        "x-client-ip", "x-cluster-client-ip", "cf-connecting-ip", "fastly-client-ip",
    ]

    public init() {}
}
