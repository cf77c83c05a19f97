import NIOCore
import NIOEmbedded
import NIOHTTP1
import RampartCore

/// The request side of the gateway's HTTP/1 server pipeline, on an `EmbeddedChannel`: the same
/// `configureHTTPServerPipeline` call with the same options and decoder limits as
/// `Gateway.configureHTTP1` (Sources/RampartDataPlane/Gateway.swift), with a listener's default
/// ``Limits``. What comes out is what the gateway's `ClientHandler` would be handed.
enum GatewayDecoding {
    /// One request as the decoder delivered it.
    struct Request {
        /// The head.
        var head: HTTPRequestHead
        /// The body bytes, de-chunked.
        var body: [UInt8] = []
        /// True when the decoder delivered the request's `.end`.
        var ended = false
    }

    /// What decoding a byte stream gave.
    struct Outcome {
        /// The requests, in order; the last one may be incomplete.
        var requests: [Request] = []
        /// The decoder's error, when it refused the stream (the gateway closes the connection then).
        var error: (any Error)?
    }

    /// The decoder limits the gateway sets from a listener's limits.
    static func decoderLimits(_ limits: Limits) -> NIOHTTPDecoderLimitConfiguration {
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldCount = limits.maxHeaderCount
        return decoderLimits
    }

    /// Feeds `bytes` to a fresh server pipeline (in one read) and collects the request parts.
    static func decode(_ bytes: [UInt8], limits: Limits = Limits()) -> Outcome {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        do {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withPipeliningAssistance: false,
                withErrorHandling: false,
                withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(),
                withDecoderLimitConfiguration: decoderLimits(limits)
            )
        } catch {
            fatalError("cannot set up the HTTP/1 server pipeline: \(error)")
        }
        var outcome = Outcome()
        do {
            try channel.writeInbound(channel.allocator.buffer(bytes: bytes))
        } catch {
            outcome.error = error
        }
        outcome.requests = collect(from: channel)
        return outcome
    }

    /// Reads the decoded request parts waiting in `channel`'s inbound buffer.
    static func collect(from channel: EmbeddedChannel) -> [Request] {
        var requests: [Request] = []
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            switch part {
            case .head(let head):
                requests.append(Request(head: head))
            case .body(var buffer):
                FuzzCheck.require(!requests.isEmpty && !requests[requests.count - 1].ended, "decoder delivered a body part outside a request")
                requests[requests.count - 1].body += buffer.readBytes(length: buffer.readableBytes) ?? []
            case .end:
                FuzzCheck.require(!requests.isEmpty && !requests[requests.count - 1].ended, "decoder delivered an end outside a request")
                requests[requests.count - 1].ended = true
            }
        }
        return requests
    }
}
