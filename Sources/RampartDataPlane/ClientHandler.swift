import NIOCore
import NIOHTTP1
import RampartCore

/// Serves one client connection. The shell between the channel and the request path: each request
/// head goes through the request phases (``RequestPipeline``), and what they decide is carried out
/// here: an answer of the gateway's own (``ClientHandler+Answers.swift``), or the request streamed
/// to an origin and the response back, with back-pressure both ways
/// (``ClientHandler+Origin.swift``). Where the exchange is lives in one ``ExchangeState``.
///
/// Requests on one connection are served one at a time. Pipelined requests that arrive while a
/// response is still going out are queued here (bounded; reads are held past the bound) rather
/// than by `HTTPServerPipelineHandler`, which would stop and restart reading around every request.
final class ClientHandler: ChannelDuplexHandler, RemovableChannelHandler, UpstreamDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let loop: LoopContext
    /// What the connection tells every request on it (peer, scheme, fingerprint, listener limits).
    var facts: ConnectionFacts
    /// The connection's client address (the TCP peer, or the PROXY protocol source).
    var peer: IPAddress {
        get { facts.peer }
        set { facts.peer = newValue }
    }
    var timeouts: ConnectionTimeouts
    var context: ChannelHandlerContext?
    var state = ExchangeState.idle
    /// Requests begun on this connection; callbacks of an earlier request compare it to know they are stale.
    var requestsOnConnection = 0

    /// The request in progress: what it is and what the request phases decided about it. Before
    /// the first head, an empty `GET /`, so that unparseable bytes still get an answer with an id.
    var request: RequestContext
    /// The client has sent the whole request; the gateway has started its answer.
    var requestEnded = false
    var responseStarted = false
    var bodyBytes = 0
    /// The client still waits for `100 Continue` before sending its body.
    var expectsContinue = false
    /// The origin's answer being captured for the cache (when this request fetches for it).
    var fill: CacheFill?
    /// The request already went to a second origin connection once.
    var retried = false
    var answer = AnswerRecord()

    // Back-pressure towards the client: reads held while the origin cannot take more, or while too
    // many pipelined request parts wait.
    private var readsHeld = false
    private var readPending = false
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    private var processingQueue = false
    /// Pipelined request parts kept before client reads are held.
    private static let maxQueuedParts = 64

    // One lazy timer for the connection's deadlines.
    var timer: Scheduled<Void>?
    var timerAt: NIODeadline?

    init(loop: LoopContext, listener: Int, peer: IPAddress, scheme: String, fingerprint: String? = nil, now: NIODeadline) {
        let limits = loop.config.source.listeners[listener].limits
        self.loop = loop
        self.facts = ConnectionFacts(peer: peer, scheme: scheme, fingerprint: fingerprint, limits: limits)
        self.timeouts = ConnectionTimeouts(limits: limits, now: now)
        self.request = Self.emptyRequest(facts: facts, id: "", now: now)
    }

    private static func emptyRequest(facts: ConnectionFacts, id: String, now: NIODeadline) -> RequestContext {
        RequestContext(id: id, head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"), start: now, connection: facts, keepAlive: true)
    }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        armTimer(now: loop.eventLoop.now)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
        self.context = nil
    }

    /// Raw bytes arrived (told by ``ClientActivityHandler``): a new request has started.
    func bytesArrived() {
        if state.isIdle {
            let now = loop.eventLoop.now
            timeouts.bytesReceived(now: now)
            armTimer(now: now)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        // A part of the next request while this one's response is still going out: queue it.
        if !queued.isEmpty || (requestEnded && !state.isIdle && !state.isClosed) {
            queued.append(part)
            if queued.count >= Self.maxQueuedParts { holdReads(true) }
            return
        }
        dispatch(part, context: context)
    }

    private func dispatch(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head): receivedHead(head, context: context)
        case .body(let buffer): receivedBody(buffer)
        case .end(let trailers): receivedEnd(trailers)
        }
    }

    /// Serves queued pipelined parts once the connection is idle again.
    func drainQueue() {
        guard !queued.isEmpty, !processingQueue, let context else { return }
        processingQueue = true
        defer { processingQueue = false }
        while state.isIdle || (!state.isClosed && !requestEnded), let part = queued.popFirst() {
            dispatch(part, context: context)
        }
        if queued.count < Self.maxQueuedParts, !state.isClosed {
            holdReads(state.leg.map { !$0.connection.channel.isWritable } ?? false)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        state.leg?.connection.handler.flush()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if readsHeld {
            readPending = true
        } else {
            context.read()
        }
    }

    /// Holds client reads (the origin cannot take more, or too much waits) or lets them go on.
    func holdReads(_ hold: Bool) {
        readsHeld = hold
        if !hold, readPending, let context {
            readPending = false
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        let now = loop.eventLoop.now
        timeouts.writabilityChanged(isWritable: writable, now: now)
        if let leg = state.leg {
            if writable { leg.connection.handler.resumeReads() } else { leg.connection.handler.pauseReads() }
        }
        armTimer(now: now)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A response that did not finish leaves the origin connection mid-message: not reusable.
        releaseOrigin(reusable: false)
        state = .closed
        cancelTimer()
        endFill()
        queued.removeAll()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // Drain: an idle kept-alive connection closes now; a busy one after its current response.
            // A connection accepted a moment ago that has not sent its first request yet is left
            // open for it (answered with `Connection: close`, bounded by the header timeout): its
            // client cannot know it arrived during a drain or a binary upgrade.
            request.keepAlive = false
            if state.isIdle, requestsOnConnection > 0 { closeNow() }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !state.isClosed else { return }
        guard let parseError = error as? HTTPParserError else {
            // I/O errors (reset by peer and the like): nothing to answer.
            closeNow()
            return
        }
        let reason = RejectReason(parserError: parseError)
        if state.isIdle {
            // No head was parsed: the answer goes out under a fresh id.
            request = Self.emptyRequest(facts: facts, id: loop.nextRequestID(), now: loop.eventLoop.now)
        }
        // Malformed requests count toward a ban like any other abuse.
        _ = loop.strike(request.client, reason: reason)
        if responseStarted {
            loop.reject(reason, client: request.client)
            closeNow()
        } else {
            request.keepAlive = false
            releaseOrigin(reusable: false)
            respondLocally(reason, detail: "\(parseError)")
        }
    }

    // MARK: - A request head

    /// A request head: the request phases decide it; what they decide is carried out here.
    private func receivedHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard state.isIdle else {
            // The decoder delivers one request at a time and pipelined ones are queued: refuse rather than mix two.
            closeNow()
            return
        }
        let now = loop.eventLoop.now
        requestsOnConnection += 1
        loop.counters.requests += 1
        request = RequestContext(
            id: loop.nextRequestID(), head: head, start: now, connection: facts,
            keepAlive: head.isKeepAlive && requestsOnConnection < facts.limits.maxRequestsPerConnection && !loop.draining
        )
        requestEnded = false
        responseStarted = false
        retried = false
        bodyBytes = 0
        fill = nil
        answer = AnswerRecord()

        let result = RequestPipeline.run(&request, loop: loop, now: now)
        timeouts.headReceived(now: now, expectsBody: request.hasBody)
        if let site = request.site {
            timeouts.limits = Self.merged(listener: facts.limits, site: site.config.limits)
        }
        armTimer(now: now)
        expectsContinue = request.accepted.expectsContinue
        carryOut(result, context: context, now: now)
    }

    /// Does what the request phases decided.
    func carryOut(_ result: PhaseResult, context: ChannelHandlerContext, now: NIODeadline) {
        switch result {
        case .next:
            proceedToOrigin(now: now)
        case .respond(.refusal(let reason, let retryAfter, let detail)):
            respondLocally(reason, retryAfter: retryAfter, detail: detail)
        case .respond(.page(let status, let body, let headers, let decision)):
            sendGenerated(status, body: body, headers: headers, decision: decision)
        case .respond(.cached(let entry, let stale)):
            serveFromCache(entry, stale: stale, now: now)
        case .close(let reason, let detail):
            loop.reject(reason, client: request.client, detail: detail)
            if reason.blamesClient { request.site?.defence.recordRefused(request.client) }
            closeNow()
        case .hold(.tarpit(let delay, let rule, let retryAfter)):
            state = .held
            let generation = requestsOnConnection
            context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
                guard self.requestsOnConnection == generation, case .held = self.state else { return }
                self.respondLocally(.rateLimited, retryAfter: retryAfter, detail: "\(rule): tarpit")
            }
        case .hold(.coalesce(let key)):
            let generation = requestsOnConnection
            let waiting = loop.waitForFill(key) { [self] in
                guard case .coalescing = self.state, self.requestsOnConnection == generation else { return }
                self.coalescedFillEnded(key: key)
            }
            if waiting {
                state = .coalescing
            } else {
                // Too many wait for this fetch already: this one goes to the origin itself.
                proceedToOrigin(now: now)
            }
        }
    }
}

@available(*, unavailable)
extension ClientHandler: Sendable {}

