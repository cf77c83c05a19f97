import NIOCore
import NIOHPACK
import NIOHTTP2
import RampartCore

/// First handler on every HTTP/2 stream, before the translation to HTTP/1: refuses a request whose
/// pseudo-headers the translation would hide or pass on unchecked (``HTTP2RequestCheck``) with a
/// 400 and a closed stream, counted and struck like any malformed request; and marks a body on a
/// method the translation leaves unframed (a GET with DATA) as chunked, so it is forwarded with a
/// framing instead of as raw bytes after the head.
final class HTTP2RequestGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let loop: LoopContext
    private let peer: IPAddress
    private enum State {
        case waitingForHeaders
        case passing
        case refused
    }
    private var state = State.waitingForHeaders

    init(loop: LoopContext, peer: IPAddress) {
        self.loop = loop
        self.peer = peer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .passing:
            context.fireChannelRead(data)
        case .refused:
            return
        case .waitingForHeaders:
            guard case .headers(var headers) = unwrapInboundIn(data) else {
                context.fireChannelRead(data)
                return
            }
            let block = headers.headers
            let verdict = HTTP2RequestCheck.check(
                method: block.first(name: ":method") ?? "",
                path: block.first(name: ":path"),
                authority: block.first(name: ":authority"),
                hosts: block["host"],
                hasContentLength: block.contains(name: "content-length"),
                endStream: headers.endStream
            )
            switch verdict {
            case .pass(let declareChunked):
                state = .passing
                if declareChunked {
                    headers.headers.add(name: "transfer-encoding", value: "chunked")
                    context.fireChannelRead(wrapInboundOut(.headers(headers)))
                } else {
                    context.fireChannelRead(data)
                }
            case .refuse(let why):
                state = .refused
                loop.reject(.badRequest, client: peer, detail: "HTTP/2 request: \(why)")
                _ = loop.strike(peer, reason: .badRequest)
                let answer: HPACKHeaders = [":status": "400", "content-length": "0", "cache-control": "no-store"]
                let promise = context.eventLoop.makePromise(of: Void.self)
                context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: answer, endStream: true))), promise: promise)
                promise.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            }
        }
    }
}

@available(*, unavailable)
extension HTTP2RequestGuard: Sendable {}
