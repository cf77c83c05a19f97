/// What the gateway does with request headers that carry a client's identity or a routing override
/// (`Forwarded`, `X-Real-IP`, `X-Original-URL`, `X-HTTP-Method-Override`, ...). An origin (or a
/// framework on it) that believes them would let any client pick its own address, path or method
/// past every rule the gateway applied. The gateway strips them and sets its own where it knows
/// the answer.
public struct RequestHeaderPolicy: Hashable, Sendable {
    /// Header names (lowercase) removed from every forwarded request.
    public var strip: [String] = RequestHeaderPolicy.defaultStrip {
        didSet { lengths = Self.lengthMask(strip) }
    }
    /// One bit per name length in `strip` (lengths over 63 share bit 63): most headers are passed
    /// after one bit test.
    private var lengths: UInt64 = RequestHeaderPolicy.lengthMask(RequestHeaderPolicy.defaultStrip)
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

    static func lengthMask(_ names: [String]) -> UInt64 {
        names.reduce(0) { $0 | 1 << UInt64(min(63, $1.utf8.count)) }
    }

    /// True when `name` (any case) is to be stripped.
    @inlinable
    public func strips(_ name: String) -> Bool {
        guard lengthsContain(name.utf8.count) else { return false }
        return strip.contains { name.equalsASCIICaseInsensitive($0) }
    }

    @usableFromInline
    func lengthsContain(_ n: Int) -> Bool { lengths & (1 << UInt64(min(63, n))) != 0 }
}
