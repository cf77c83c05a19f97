import NIOCore
import NIOHTTP1

/// What an origin connection reports to the client request that is using it.
protocol UpstreamDelegate: AnyObject {
    func upstreamReceived(_ part: HTTPClientResponsePart)
    func upstreamReadComplete()
    func upstreamWritabilityChanged(isWritable: Bool)
    func upstreamFailed(_ error: any Error)
}

/// The last handler of an origin connection's pipeline. It relays response parts to the current
/// delegate (the client handler on the same event loop), holds reads while the client is not
/// reading (back-pressure), and enforces the origin response timeout with one lazy timer.
final class UpstreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    weak var delegate: (any UpstreamDelegate)?
    private var context: ChannelHandlerContext?
    private var readsPaused = false
    private var readPending = false
    /// When the origin must have sent something by; nil while no response is awaited.
    private var deadline: NIODeadline?
    private var responseTimeout: TimeAmount = .seconds(30)
    private var timer: Scheduled<Void>?
    private var timerAt: NIODeadline?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Sends a request part (not flushed).
    func write(_ part: HTTPClientRequestPart) {
        context?.write(wrapOutboundOut(part), promise: nil)
    }

    /// Flushes written parts.
    func flush() { context?.flush() }

    /// Starts the response clock: the origin must answer within `timeout`, and keep sending with
    /// gaps no longer than `timeout`.
    func awaitResponse(timeout: TimeAmount) {
        responseTimeout = timeout
        let now = context?.eventLoop.now ?? .now()
        deadline = now + timeout
        armTimer(now: now)
    }

    /// Stops reading from the origin until ``resumeReads()`` (the client is not keeping up).
    func pauseReads() { readsPaused = true }

    /// Reads again, and performs a read that was held.
    func resumeReads() {
        readsPaused = false
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    func read(context: ChannelHandlerContext) {
        if readsPaused {
            readPending = true
        } else {
            context.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if case .end = part {
            deadline = nil
        } else if deadline != nil {
            deadline = context.eventLoop.now + responseTimeout
        }
        if let delegate {
            delegate.upstreamReceived(part)
        } else {
            // Nobody is waiting for this: an idle connection must not talk. Drop it.
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(isWritable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        if let delegate {
            self.delegate = nil
            delegate.upstreamFailed(UpstreamError.closed)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let delegate {
            self.delegate = nil
            delegate.upstreamFailed(error)
        }
        context.close(promise: nil)
    }

    private func armTimer(now: NIODeadline) {
        guard let deadline, let context else { return }
        if let at = timerAt, at <= deadline { return }
        timer?.cancel()
        timerAt = deadline
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.timerFired()
        }
    }

    private func timerFired() {
        timer = nil
        timerAt = nil
        guard let deadline, let context else { return }
        let now = context.eventLoop.now
        if now >= deadline {
            self.deadline = nil
            if let delegate {
                self.delegate = nil
                delegate.upstreamFailed(UpstreamError.timeout)
            }
            context.close(promise: nil)
        } else {
            armTimer(now: now)
        }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
        timerAt = nil
    }
}

/// Why an origin exchange ended early.
enum UpstreamError: Error {
    /// The origin closed the connection.
    case closed
    /// The origin did not answer in time.
    case timeout
}

@available(*, unavailable)
extension UpstreamHandler: Sendable {}
