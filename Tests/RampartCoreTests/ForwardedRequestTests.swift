import NIOHTTP1
import Testing

@testable import RampartCore

/// The request the origin receives, built from what the request checks accepted.
@Suite struct ForwardedRequestTests {
    static let hop = ForwardingHeaders.Hop(peer: "192.0.2.7", client: "192.0.2.7", peerIsTrusted: false, scheme: "https", requestID: "r1", version: .http1_1)

    static func forward(_ method: HTTPMethod, _ uri: String, _ headers: [(String, String)], version: HTTPVersion = .http1_1) throws -> HTTPRequestHead {
        let head = HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(headers))
        let accepted = try RequestChecks.framing(head).get()
        return ForwardingHeaders.forwardedHead(head, accepted: accepted, hop: hop, fallbackHost: "www.example.org", policy: RequestHeaderPolicy())
    }

    @Test func framingHeadersAreNeverHopByHop() throws {
        let f = try Self.forward(.GET, "/a", [("Host", "site.test"), ("Content-Length", "71"), ("Connection", "content-length, host, transfer-encoding")])
        #expect(f.headers["content-length"] == ["71"])
        #expect(f.headers["host"] == ["site.test"])
        #expect(f.headers["transfer-encoding"].isEmpty)
        #expect(f.headers["connection"].isEmpty)
        let chunked = try Self.forward(.DELETE, "/a", [("Host", "site.test"), ("Transfer-Encoding", "chunked"), ("Connection", "transfer-encoding")])
        #expect(chunked.headers["transfer-encoding"] == ["chunked"])
        #expect(chunked.headers["content-length"].isEmpty)
    }

    /// An origin's response loses its hop-by-hop headers and those its `Connection` headers name
    /// (any case, any spacing, in one or several `Connection` headers), never `Content-Length`.
    @Test func responsesLoseHopByHopAndNominatedHeaders() {
        var headers = HTTPHeaders([
            ("Content-Type", "text/html"), ("Connection", "keep-alive ,  X-Internal"), ("Keep-Alive", "timeout=5"),
            ("x-internal", "secret"), ("Content-Length", "5"), ("Set-Cookie", "a=1"), ("Connection", "content-length, X-Other"),
            ("X-Other", "2"), ("X-Otherwise", "kept"), ("Transfer-Encoding", "chunked"), ("Proxy-Authenticate", "Basic"),
        ])
        ForwardingHeaders.prepareResponse(&headers)
        #expect(headers.map(\.name) == ["Content-Type", "Content-Length", "Set-Cookie", "X-Otherwise"])
        var plain = HTTPHeaders([("Content-Type", "text/html"), ("Content-Length", "5")])
        ForwardingHeaders.prepareResponse(&plain)
        #expect(plain.map(\.name) == ["Content-Type", "Content-Length"])
        #expect(ForwardingHeaders.tokenList(" a, Bee ,c", contains: "bee"))
        #expect(!ForwardingHeaders.tokenList("a,bee", contains: "be"))
        #expect(!ForwardingHeaders.tokenList("", contains: "a"))
        #expect(ForwardingHeaders.tokenList(",,a,", contains: "A"))
    }

    @Test func exactlyOneFramingWhateverTheMethod() throws {
        for method in [HTTPMethod.GET, .HEAD, .DELETE, .OPTIONS, .POST, .PUT, .PATCH, .RAW(value: "PROPFIND")] {
            let withBody = try Self.forward(method, "/", [("Host", "h"), ("Content-Length", "5")])
            #expect(withBody.headers["content-length"] == ["5"], "\(method)")
            let none = try Self.forward(method, "/", [("Host", "h")])
            let expected: [String] = [.POST, .PUT, .PATCH].contains(method) ? ["0"] : []
            #expect(none.headers["content-length"] == expected, "\(method)")
            #expect(none.headers["transfer-encoding"].isEmpty)
        }
    }

    @Test func theTargetsAuthorityIsTheHostForwarded() throws {
        let f = try Self.forward(.GET, "http://X.test/p/../q", [("Host", "y.test")])
        #expect(f.uri == "/q")
        #expect(f.headers["host"] == ["x.test"])
        #expect(f.headers["x-forwarded-host"] == ["x.test"])
        let http10 = try Self.forward(.GET, "/", [], version: .http1_0)
        #expect(http10.version == .http1_1)
        #expect(http10.headers["host"] == ["www.example.org"])
    }

    @Test func identityAndRoutingOverridesAreStrippedAndSetByTheGateway() throws {
        let f = try Self.forward(.GET, "/", [
            ("Host", "h"), ("X-Real-IP", "6.6.6.6"), ("Forwarded", "for=6.6.6.6"), ("X-Original-URL", "/admin"),
            ("X-Rewrite-URL", "/admin"), ("X-HTTP-Method-Override", "DELETE"), ("X-Forwarded-For", "6.6.6.6"), ("Cookie", "a=b"),
        ])
        #expect(f.headers["x-real-ip"] == ["192.0.2.7"])
        #expect(f.headers["x-forwarded-for"] == ["192.0.2.7"])
        for name in ["forwarded", "x-original-url", "x-rewrite-url", "x-http-method-override"] { #expect(f.headers[name].isEmpty, "\(name)") }
        #expect(f.headers["cookie"] == ["a=b"])
        var policy = RequestHeaderPolicy()
        policy.strip = []
        policy.setRealIP = false
        policy.setForwarded = true
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["Host": "h", "X-Original-URL": "/kept"])
        let kept = ForwardingHeaders.forwardedHead(head, accepted: try RequestChecks.framing(head).get(), hop: Self.hop, fallbackHost: "", policy: policy)
        #expect(kept.headers["x-original-url"] == ["/kept"])
        #expect(kept.headers["x-real-ip"].isEmpty)
        #expect(kept.headers["forwarded"] == [#"for=192.0.2.7;proto=https;host="h""#])
    }

    @Test func methodsMustBeTokensAndTraceIsRefused() {
        func reason(_ method: HTTPMethod) -> RejectReason? {
            if case .failure(let e) = RequestChecks.framing(HTTPRequestHead(version: .http2, method: method, uri: "/", headers: ["host": "h"])) { return e.reason }
            return nil
        }
        #expect(reason(.RAW(value: #"X","client":"9.9.9.9"#)) == .badRequest)
        #expect(reason(.RAW(value: "")) == .badRequest)
        #expect(reason(.TRACE) == .methodNotAllowed)
        #expect(reason(.RAW(value: "TRACK")) == .methodNotAllowed)
        #expect(reason(.RAW(value: "PROPFIND")) == nil)
    }

    @Test func http2RequestsAreCheckedBeforeTranslation() {
        func check(_ method: String = "GET", path: String? = "/", authority: String? = "a.test", hosts: [String] = [], cl: Bool = false, end: Bool = true) -> HTTP2RequestCheck.Verdict {
            HTTP2RequestCheck.check(method: method, path: path, authority: authority, hosts: hosts, hasContentLength: cl, endStream: end)
        }
        #expect(check() == .pass(declareChunked: false))
        #expect(check(end: false) == .pass(declareChunked: true))
        #expect(check("HEAD", end: false) == .pass(declareChunked: true))
        #expect(check(cl: true, end: false) == .pass(declareChunked: false))
        #expect(check("POST", end: false) == .pass(declareChunked: false))
        #expect(check(hosts: ["A.test"]) == .pass(declareChunked: false))
        if case .pass = check(path: "http://x.test/p") { Issue.record("absolute :path must be refused") }
        if case .pass = check(hosts: ["b.test"]) { Issue.record(":authority and host differ") }
        if case .pass = check(#"X","client":"9"#) { Issue.record("method must be a token") }
        if case .pass = check(path: nil) { Issue.record("no :path") }
        if case .pass = check(authority: nil) { Issue.record("no authority at all") }
        #expect(check("OPTIONS", path: "*") == .pass(declareChunked: false))
    }
}
