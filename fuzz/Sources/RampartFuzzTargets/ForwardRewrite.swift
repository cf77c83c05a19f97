import NIOCore
import NIOEmbedded
import NIOHTTP1
import RampartCore

/// `forward-rewrite`: what the origin parses is what the gateway decided. Raw bytes through the
/// gateway's decoder and `RequestChecks.framing`; the forwarded head the gateway builds from each
/// accepted request; that head and the body through the origin connection's `HTTPRequestEncoder`
/// (as `OriginPool` sets it up); the bytes on the wire through a fresh `HTTPRequestDecoder`, as an
/// origin would read them.
enum ForwardRewrite {
    /// The registry entry.
    static let target = FuzzTarget(
        name: "forward-rewrite",
        property: "the origin parses exactly one request per forwarded one, with the decided method, target, Host and body, and at most one framing header (exactly one when there is a body)",
        run: run
    )

    /// The connection's peer as the gateway sees it.
    static let peer = "198.51.100.7"
    /// The `Host` the gateway forwards when the client sent none (HTTP/1.0): `ClientHandler.fallbackHost`
    /// gives the site's first host name.
    static let fallbackHost = "www.example.gov.lt"

    /// Checks one input: the bytes a client sends on one connection.
    static func run(_ bytes: [UInt8]) {
        let outcome = GatewayDecoding.decode(bytes)
        // Both header policies and both kinds of peer, chosen by the input's length so each input
        // stays reproducible.
        var policy = RequestHeaderPolicy()
        policy.setForwarded = bytes.count & 1 == 1
        let peerIsTrusted = bytes.count & 2 == 2
        for request in outcome.requests where request.ended {
            guard case .success(let accepted) = RequestChecks.framing(request.head) else { continue }
            // An upgrade turns the connection into a byte tunnel after the head: nothing to re-parse.
            guard upgradeRequested(request.head) == nil else { continue }
            let forwarded = forwardedHead(request.head, accepted: accepted, policy: policy, peerIsTrusted: peerIsTrusted)
            let wire = encodeForOrigin(forwarded, body: request.body)
            check(wire: wire, forwarded: forwarded, accepted: accepted, request: request)
        }
    }

    /// The head the gateway sends to the origin for an accepted request, built as `ClientHandler`
    /// builds it (Sources/RampartDataPlane/ClientHandler.swift, after the challenge stage):
    /// `ForwardingHeaders.forwardedHead`, then the clearance cookie stripped.
    static func forwardedHead(
        _ head: HTTPRequestHead, accepted: RequestChecks.Accepted, policy: RequestHeaderPolicy, peerIsTrusted: Bool
    ) -> HTTPRequestHead {
        var forwarded = ForwardingHeaders.forwardedHead(
            head,
            accepted: accepted,
            hop: ForwardingHeaders.Hop(
                peer: peer, client: peer, peerIsTrusted: peerIsTrusted, scheme: "http", requestID: "0123456789abcdef", version: head.version
            ),
            fallbackHost: accepted.host == nil ? fallbackHost : "",
            policy: policy,
            upgrade: nil
        )
        ChallengeRoutes.stripClearanceCookie(&forwarded.headers)
        return forwarded
    }

    /// `ClientHandler.upgradeRequested`: the protocol a GET asks to switch to, if any.
    static func upgradeRequested(_ head: HTTPRequestHead) -> String? {
        guard head.method == .GET, let proto = head.headers.first(name: "upgrade"), !proto.isEmpty else { return nil }
        for value in head.headers["connection"] {
            for token in value.split(separator: ",") where token.trimmingASCIISpaces().equalsASCIICaseInsensitive("upgrade") {
                return proto
            }
        }
        return nil
    }

    /// The bytes the origin connection writes for `head` and `body` (the body as the gateway
    /// passes it on: the decoded bytes, in one part).
    static func encodeForOrigin(_ head: HTTPRequestHead, body: [UInt8]) -> [UInt8] {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        do {
            try channel.pipeline.syncOperations.addHTTPClientHandlers(leftOverBytesStrategy: .forwardBytes, enableOutboundHeaderValidation: false)
            try channel.writeOutbound(HTTPClientRequestPart.head(head))
            if !body.isEmpty { try channel.writeOutbound(HTTPClientRequestPart.body(.byteBuffer(channel.allocator.buffer(bytes: body)))) }
            try channel.writeOutbound(HTTPClientRequestPart.end(nil))
        } catch {
            FuzzCheck.require(false, "the origin encoder refused the forwarded request \(head): \(error)")
        }
        var wire: [UInt8] = []
        while let part = try? channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(var buffer) = part else { continue }
            wire += buffer.readBytes(length: buffer.readableBytes) ?? []
        }
        return wire
    }

    /// The origin's view of `wire`, against what the gateway decided.
    static func check(wire: [UInt8], forwarded: HTTPRequestHead, accepted: RequestChecks.Accepted, request: GatewayDecoding.Request) {
        let head = request.head
        let context = "client sent \(head.method) \(head.uri) \(head.version) \(Array(head.headers)) with \(request.body.count) body bytes; origin got \(String(decoding: wire, as: UTF8.self).debugDescription)"
        let origin = originDecode(wire)
        FuzzCheck.require(origin.error == nil, "the origin could not parse the forwarded request (\(String(describing: origin.error))): \(context)")
        FuzzCheck.require(origin.requests.count == 1, "the origin parsed \(origin.requests.count) requests: \(context)")
        let parsed = origin.requests[0]
        FuzzCheck.require(parsed.ended, "the origin's request did not end: \(context)")
        FuzzCheck.require(parsed.head.method == head.method, "method \(parsed.head.method), decided \(head.method): \(context)")
        FuzzCheck.require(parsed.head.uri == accepted.target, "target \(parsed.head.uri.debugDescription), decided \(accepted.target.debugDescription): \(context)")
        let hosts = parsed.head.headers["host"]
        let host = accepted.host ?? fallbackHost
        FuzzCheck.require(hosts == [host], "Host \(hosts), decided \(host.debugDescription): \(context)")
        FuzzCheck.require(parsed.body == request.body, "body of \(parsed.body.count) bytes, decided \(request.body.count): \(context)")
        FuzzCheck.require(parsed.head.version == .http1_1, "forwarded as \(parsed.head.version): \(context)")
        // The same fields (the encoder may re-case and move the framing header it writes itself).
        let sent = fields(forwarded.headers)
        let got = fields(parsed.head.headers)
        FuzzCheck.require(got == sent, "the origin parsed the headers \(got), the gateway sent \(sent): \(context)")
        let lengths = parsed.head.headers["content-length"]
        let codings = parsed.head.headers["transfer-encoding"]
        let framingHeaders = lengths.count + codings.count
        FuzzCheck.require(framingHeaders <= 1, "\(framingHeaders) framing headers (\(lengths), \(codings)): \(context)")
        if !request.body.isEmpty {
            FuzzCheck.require(framingHeaders == 1, "a body of \(request.body.count) bytes with no framing header: \(context)")
        }
        switch accepted.framing {
        case .chunked:
            FuzzCheck.require(codings == ["chunked"] && lengths.isEmpty, "decided chunked, forwarded \(lengths) \(codings): \(context)")
        case .length(let n):
            FuzzCheck.require(lengths == [String(n)] && codings.isEmpty, "decided Content-Length \(n), forwarded \(lengths) \(codings): \(context)")
        case .none:
            FuzzCheck.require((lengths.isEmpty || lengths == ["0"]) && codings.isEmpty, "decided no body, forwarded \(lengths) \(codings): \(context)")
        }
    }

    /// Header fields as lower-case name and value, ordered by name (stable within one name).
    static func fields(_ headers: HTTPHeaders) -> [[String]] {
        headers.enumerated()
            .sorted { a, b in
                let (x, y) = (a.element.name.lowercased(), b.element.name.lowercased())
                return x != y ? x < y : a.offset < b.offset
            }
            .map { [$0.element.name.lowercased(), $0.element.value] }
    }

    /// A fresh decoder, as an origin server would run it, over the forwarded bytes; the input ends
    /// after them (the connection stays open: a second request would have to be in `wire`).
    static func originDecode(_ wire: [UInt8]) -> GatewayDecoding.Outcome {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        do {
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
        } catch {
            fatalError("cannot set up the origin's decoder: \(error)")
        }
        var outcome = GatewayDecoding.Outcome()
        do {
            try channel.writeInbound(channel.allocator.buffer(bytes: wire))
        } catch {
            outcome.error = error
        }
        outcome.requests = GatewayDecoding.collect(from: channel)
        return outcome
    }
}
