import NIOCore

/// Sits in front of the HTTP decoder and tells the client handler when bytes arrive, so the header
/// deadline starts at a request's first byte rather than when the previous response ended.
final class ClientActivityHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let client: ClientHandler

    init(client: ClientHandler) { self.client = client }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        client.bytesArrived()
        context.fireChannelRead(data)
    }
}

@available(*, unavailable)
extension ClientActivityHandler: Sendable {}
