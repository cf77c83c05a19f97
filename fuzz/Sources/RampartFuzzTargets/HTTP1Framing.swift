import NIOHTTP1
import RampartCore

/// `http1-framing`: raw bytes through the gateway's HTTP/1 decoder, then every head through
/// `RequestChecks.framing`, the request-smuggling defences.
enum HTTP1Framing {
    /// The registry entry.
    static let target = FuzzTarget(
        name: "http1-framing",
        property: "an accepted head has a plausible lower-case host, a normal origin-form target (or * for OPTIONS), never both Content-Length and chunked, and the decoder's body agrees with the decided framing",
        run: run
    )

    /// Checks one input: the bytes a client sends on one connection.
    static func run(_ bytes: [UInt8]) {
        let outcome = GatewayDecoding.decode(bytes)
        for request in outcome.requests {
            guard case .success(let accepted) = RequestChecks.framing(request.head) else { continue }
            check(accepted, request: request)
        }
    }

    /// The properties of one accepted request.
    static func check(_ accepted: RequestChecks.Accepted, request: GatewayDecoding.Request) {
        let head = request.head
        let context = "\(head.method) \(head.uri) \(head.version) \(Array(head.headers))"
        // CONNECT opens a tunnel; TRACE bodies are dropped from the framing by NIO's request encoder.
        FuzzCheck.require(head.method != .CONNECT && head.method != .TRACE, "\(head.method) accepted: \(context)")
        if let host = accepted.host {
            FuzzCheck.require(isPlausibleHost(host), "implausible host \(host.debugDescription) accepted: \(context)")
            FuzzCheck.require(host == host.lowercased(), "host \(host.debugDescription) not lower-cased: \(context)")
        } else {
            FuzzCheck.require(head.version < .http1_1, "HTTP/1.1 request without a host accepted: \(context)")
        }
        FuzzCheck.require(
            accepted.target.hasPrefix("/") || (accepted.target == "*" && head.method == .OPTIONS),
            "target \(accepted.target.debugDescription) is neither origin-form nor * for OPTIONS: \(context)"
        )
        if accepted.target != "*" {
            // One normal form: every rule, the cache key and the origin see the same target.
            let again = RequestTarget.normalise(accepted.target)
            FuzzCheck.require(again == .success(accepted.target), "target \(accepted.target.debugDescription) normalises again to \(again): \(context)")
        }
        FuzzCheck.require(!(accepted.contentLength != nil && accepted.chunked), "both Content-Length and chunked: \(context)")
        if let length = accepted.contentLength {
            FuzzCheck.require(length >= 0, "negative Content-Length \(length): \(context)")
            let values = head.headers["content-length"]
            FuzzCheck.require(
                values.count == 1 && Int(values[0]) == length, "Content-Length \(length) decided from the headers \(values): \(context)"
            )
        }
        FuzzCheck.require(!accepted.chunked || head.version == .http1_1, "chunked accepted on \(head.version): \(context)")
        FuzzCheck.require(accepted.chunked == head.headers.contains(name: "transfer-encoding"), "chunked decided without Transfer-Encoding (or the reverse): \(context)")
        // The framing the gateway decided on must be the framing the decoder used: a body the
        // decoder read by other rules than the gateway's is how a request is smuggled.
        if request.ended {
            if let length = accepted.contentLength {
                FuzzCheck.require(request.body.count == length, "decided Content-Length \(length), decoder read \(request.body.count) body bytes: \(context)")
            } else if !accepted.chunked {
                FuzzCheck.require(request.body.isEmpty, "decided no body, decoder read \(request.body.count) body bytes: \(context)")
            }
        }
    }

    /// Host values a gateway may route on: the RFC 3986 reg-name and IP-literal characters that
    /// carry no userinfo, spaces or path (letters, digits, `-._:[]`), 1 to 260 bytes. Written here
    /// from the spec rather than copied from Sources, so the two can disagree.
    static func isPlausibleHost(_ host: String) -> Bool {
        let bytes = Array(host.utf8)
        guard !bytes.isEmpty, bytes.count <= 260 else { return false }
        return bytes.allSatisfy { b in
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
            case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "["), UInt8(ascii: "]"): return true
            default: return false
            }
        }
    }
}

extension HTTPVersion {
    /// Orders versions by major, then minor.
    static func < (a: HTTPVersion, b: HTTPVersion) -> Bool {
        (a.major, a.minor) < (b.major, b.minor)
    }
}
