import NIOCore
import NIOHTTP1
import RampartCore

/// Serves one client connection: runs the request-phase guards on each request head, picks an
/// origin, and streams the request to it and the response back, with back-pressure both ways.
///
/// Requests on one connection are served one at a time, so the per-request state lives in this
/// handler's fields and a `Phase` enum. Pipelined requests that arrive while a response is still
/// going out are queued here (bounded; reads are held past the bound) rather than by
/// `HTTPServerPipelineHandler`, which would stop and restart reading around every request.
final class ClientHandler: ChannelDuplexHandler, RemovableChannelHandler, UpstreamDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Where the current request is.
    enum Phase: Equatable {
        /// Waiting for a request head.
        case idle
        /// Head accepted, waiting for an origin connection; body parts are buffered.
        case connecting
        /// Streaming to and from an origin.
        case proxying
        /// Answered locally while the client is still sending a body, which is dropped.
        case discarding
        /// Upgraded (WebSocket): bytes flow through glue handlers; this handler is leaving.
        case tunnel
        /// Rate-limited and tarpitted: the answer is held back for a while.
        case held
        /// Waiting for another request's fetch of the same cache key.
        case coalescing
        /// Collecting a small request body before taking an origin connection.
        case buffering
        /// The connection is closing or closed.
        case closed
    }

    private let loop: LoopContext
    /// What the connection tells every request on it (peer, scheme, fingerprint, listener limits).
    private var facts: ConnectionFacts
    /// The connection's client address (the TCP peer, or the PROXY protocol source).
    var peer: IPAddress {
        get { facts.peer }
        set { facts.peer = newValue }
    }
    private var timeouts: ConnectionTimeouts
    private var context: ChannelHandlerContext?
    private var phase = Phase.idle
    private var requestsOnConnection = 0

    /// The request in progress: what it is and what the request phases decided about it. Before
    /// the first head, an empty `GET /`, so that unparseable bytes still get an answer with an id.
    private var request: RequestContext
    // The exchange with the origin and the client for that request.
    private var requestEnded = false
    private var responseStarted = false
    private var bodyBytes = 0
    private var pool: OriginPool?
    private var upstream: UpstreamConnection?
    private var upstreamKeepAlive = true
    /// The origin answered the upgrade with 101; the tunnel starts at the end of that response.
    private var upgradeAccepted = false
    /// The client still waits for `100 Continue` before sending its body.
    private var expectsContinue = false
    /// The origin's answer being captured for the cache (when this request fetches for it).
    private var fill: CacheFill?
    private var retried = false
    // For the access log: what was answered and why.
    private var responseStatus = 0
    private var responseBytes = 0
    private var decision = "proxied"
    private var decisionReason: String?
    private var pendingBody = CircularBuffer<HTTPClientRequestPart>()
    private var pendingBodyBytes = 0
    /// Body bytes buffered while connecting before client reads are held.
    private static let maxPendingBody = 64 * 1024

    // Back-pressure towards the client: reads held while the origin cannot take more, or while too
    // many pipelined request parts wait.
    private var upstreamBlocked = false
    private var readPending = false
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    private var processingQueue = false
    /// Pipelined request parts kept before client reads are held.
    private static let maxQueuedParts = 64

    // One lazy timer for the connection's deadlines.
    private var timer: Scheduled<Void>?
    private var timerAt: NIODeadline?

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
        if phase == .idle {
            let now = loop.eventLoop.now
            timeouts.bytesReceived(now: now)
            armTimer(now: now)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        // A part of the next request while this one's response is still going out: queue it.
        if !queued.isEmpty || (requestEnded && phase != .idle && phase != .closed) {
            queued.append(part)
            if queued.count >= Self.maxQueuedParts { setUpstreamBlocked(true) }
            return
        }
        dispatch(part, context: context)
    }

    private func dispatch(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            receivedHead(head, context: context)
        case .body(let buffer):
            receivedBody(buffer, context: context)
        case .end(let trailers):
            receivedEnd(trailers, context: context)
        }
    }

    /// Serves queued pipelined parts once the connection is idle again.
    private func drainQueue() {
        guard !processingQueue, let context else { return }
        processingQueue = true
        defer { processingQueue = false }
        while phase == .idle || (phase != .closed && !requestEnded), let part = queued.popFirst() {
            dispatch(part, context: context)
        }
        if queued.count < Self.maxQueuedParts, phase != .closed {
            setUpstreamBlocked(upstream.map { !$0.channel.isWritable } ?? false)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if phase == .proxying { upstream?.handler.flush() }
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if upstreamBlocked {
            readPending = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        let now = loop.eventLoop.now
        timeouts.writabilityChanged(isWritable: writable, now: now)
        if writable { upstream?.handler.resumeReads() } else { upstream?.handler.pauseReads() }
        armTimer(now: now)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        phase = .closed
        cancelTimer()
        endFill()
        if let upstream, let pool {
            // The response did not finish: the origin connection is mid-message and cannot be reused.
            self.upstream = nil
            pool.release(upstream, reusable: false)
        }
        pool = nil
        pendingBody.removeAll()
        queued.removeAll()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // Drain: an idle connection closes now; a busy one after its current response.
            request.keepAlive = false
            if phase == .idle { closeNow() }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard phase != .closed else { return }
        if let parseError = error as? HTTPParserError {
            let reason = Self.reason(for: parseError)
            if phase == .idle {
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
                if let upstream, let pool {
                    self.upstream = nil
                    pool.release(upstream, reusable: false)
                }
                respondLocally(reason, detail: "\(parseError)")
            }
            return
        }
        // I/O errors (reset by peer and the like): nothing to answer.
        closeNow()
    }

    /// The refusal reason for a parser error.
    static func reason(for error: HTTPParserError) -> RejectReason {
        switch error {
        case .headerOverflow: return .headerTooLarge
        case .invalidContentLength: return .badContentLength
        case .unexpectedContentLength: return .badContentLength
        case .unknown: return .badTransferEncoding
        case .invalidChunkSize: return .badChunk
        case .invalidHeaderToken, .lfExpected, .strictModeAssertion, .invalidCharactersUsed: return .badHeader
        case .invalidURL, .invalidPath, .invalidQueryString, .invalidHost, .invalidPort, .invalidFragment: return .badTarget
        default: return .badRequest
        }
    }

    // MARK: - Request side

    /// A request head: the request phases decide it (``RequestPipeline``); what they decide is
    /// carried out here.
    private func receivedHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard phase == .idle else {
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
        upstreamKeepAlive = true
        fill = nil

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
    private func carryOut(_ result: PhaseResult, context: ChannelHandlerContext, now: NIODeadline) {
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
            closeNow()
        case .hold(.tarpit(let delay, let rule, let retryAfter)):
            phase = .held
            let generation = requestsOnConnection
            context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
                guard self.requestsOnConnection == generation, self.phase == .held else { return }
                self.respondLocally(.rateLimited, retryAfter: retryAfter, detail: "\(rule): tarpit")
            }
        case .hold(.coalesce(let key)):
            let generation = requestsOnConnection
            let waiting = loop.waitForFill(key) { [self] in
                guard self.phase == .coalescing, self.requestsOnConnection == generation else { return }
                self.coalescedFillEnded(key: key)
            }
            if waiting {
                phase = .coalescing
            } else {
                // Too many wait for this fetch already: this one goes to the origin itself.
                proceedToOrigin(now: now)
            }
        }
    }

    /// Sends the current request on to an origin of its site.
    private func proceedToOrigin(now: NIODeadline) {
        guard let context, let site = request.site else { return }
        if expectsContinue {
            // The request passed every check: ask the client for its body (the origin never sees Expect).
            expectsContinue = false
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: request.head.version, status: .continue))), promise: nil)
        }
        // A small body is collected before an origin connection is taken, so slow uploads (slow
        // POST, login floods trickling bytes) cost the origin nothing; larger ones stream.
        if request.hasBody, !requestEnded, request.upgrade == nil, phase != .buffering, (request.accepted.contentLength ?? 0) <= Self.maxPendingBody {
            phase = .buffering
            return
        }
        guard let pool = site.pickPool(now: now, counters: &loop.counters) else {
            respondLocally(.originUnavailable, retryAfter: 5)
            return
        }
        acquire(from: pool, now: now)
    }

    /// The fetch this request waited for has ended: answer from the cache if it stored something,
    /// else go to the origin like any other request.
    private func coalescedFillEnded(key: String) {
        let now = loop.eventLoop.now
        if let site = request.site, let (entry, fresh) = site.cache.lookup(key, now: now) {
            serveFromCache(entry, stale: !fresh, now: now)
            return
        }
        phase = .idle
        proceedToOrigin(now: now)
    }

    /// Answers the current request with a cached response.
    private func serveFromCache(_ entry: CachedResponse, stale: Bool, now: NIODeadline) {
        guard let context else { return }
        if stale { loop.counters.cacheStale += 1 } else { loop.counters.cacheHits += 1 }
        var head = HTTPResponseHead(version: request.head.version, status: entry.status, headers: entry.headers)
        let age = max(0, (now - entry.storedAt).nanoseconds / 1_000_000_000)
        head.headers.add(name: "Age", value: String(age))
        head.headers.add(name: "X-Cache", value: stale ? "STALE" : "HIT")
        if let setCookie = request.setCookie { head.headers.add(name: "Set-Cookie", value: setCookie) }
        request.site?.defence.traffic.cacheServed += 1
        ResponseHeadersPhase.connectionHeader(&request, headers: &head.headers, loop: loop)
        responseStarted = true
        responseStatus = Int(entry.status.code)
        responseBytes = request.head.method == .HEAD ? 0 : entry.body.readableBytes
        decision = stale ? "cache_stale" : "cache"
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if request.head.method != .HEAD { context.write(wrapOutboundOut(.body(.byteBuffer(entry.body))), promise: nil) }
        if !requestEnded { phase = .discarding }
        finishResponse(context: context, trailers: nil)
    }

    /// Ends this request's cache fetch (stored or not) so waiting requests move on.
    private func endFill() {
        fill = nil
        if let key = request.fillKey {
            request.fillKey = nil
            loop.finishFill(key)
        }
    }

    private func acquire(from pool: OriginPool, now: NIODeadline) {
        guard let site = request.site else { return }
        self.pool = pool
        phase = .connecting
        site.defence.traffic.toOrigin += 1
        if pool.queued > site.defence.traffic.queuePeak { site.defence.traffic.queuePeak = pool.queued }
        let generation = requestsOnConnection
        let result = pool.acquire(now: now, priority: OriginQueuePhase.priority(request, loop: loop, now: now), recheck: OriginQueuePhase.recheck(request)) {
            [self] result in
            self.connectionArrived(result, pool: pool, generation: generation)
        }
        switch result {
        case .ready(let conn):
            startProxying(conn)
        case .pending:
            break
        case .unavailable(let reason):
            self.pool = nil
            respondLocally(reason, retryAfter: 5)
        }
    }

    private func connectionArrived(_ result: Result<UpstreamConnection, any Error>, pool: OriginPool, generation: Int) {
        let stillWanted = phase == .connecting && self.pool === pool && requestsOnConnection == generation
        switch result {
        case .success(let conn):
            if stillWanted {
                startProxying(conn)
            } else {
                pool.release(conn, reusable: true)
            }
        case .failure(let error):
            pool.abandon()
            guard stillWanted else { return }
            self.pool = nil
            let now = loop.eventLoop.now
            switch error {
            case PoolError.queueTimeout, PoolError.shed:
                respondLocally(.originQueueFull, retryAfter: 5)
                return
            case PoolError.recheck:
                // The site started challenging while this request waited: decide it as a new one would be.
                let verdict = ChallengePhase.decide(&request, loop: loop, forced: false, now: now)
                if case .next = verdict {
                    acquire(from: pool, now: now)
                } else if let context {
                    carryOut(verdict, context: context, now: now)
                }
                return
            default:
                break
            }
            pool.health.requestFailed(now: now)
            loop.rejectionLog.log(reason: .originUnavailable, client: request.client, detail: "\(pool.address): \(error)")
            // Nothing was sent yet: another origin of the site may take the request.
            if !retried, let other = request.site?.pickPool(now: now, excluding: pool, counters: &loop.counters) {
                retried = true
                acquire(from: other, now: now)
                return
            }
            respondLocally(.originUnavailable, retryAfter: 5, detail: "\(pool.address): \(error)")
        }
    }

    private func startProxying(_ conn: UpstreamConnection) {
        guard let head = request.forwardHead else { return }
        upstream = conn
        phase = .proxying
        conn.requestsSent += 1
        conn.handler.delegate = self
        conn.handler.write(.head(head))
        while let part = pendingBody.popFirst() { conn.handler.write(part) }
        pendingBodyBytes = 0
        conn.handler.flush()
        if requestEnded { conn.handler.awaitResponse(timeout: request.siteConfig.limits.originResponseTimeout) }
        if !(context?.channel.isWritable ?? true) { conn.handler.pauseReads() }
        setUpstreamBlocked(!conn.channel.isWritable)
    }

    private func receivedBody(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        let now = loop.eventLoop.now
        timeouts.bodyReceived(count: buffer.readableBytes, now: now)
        bodyBytes += buffer.readableBytes
        let maxBody = request.site?.config.limits.maxBodyBytes ?? facts.limits.maxBodyBytes
        switch phase {
        case .proxying, .connecting:
            if bodyBytes > maxBody {
                request.keepAlive = false
                if let upstream, let pool {
                    self.upstream = nil
                    pool.release(upstream, reusable: false)
                }
                if responseStarted {
                    loop.reject(.bodyTooLarge, client: request.client)
                    closeNow()
                } else {
                    respondLocally(.bodyTooLarge)
                }
                return
            }
            if phase == .proxying {
                upstream?.handler.write(.body(.byteBuffer(buffer)))
            } else {
                pendingBody.append(.body(.byteBuffer(buffer)))
                pendingBodyBytes += buffer.readableBytes
                if pendingBodyBytes > Self.maxPendingBody { setUpstreamBlocked(true) }
            }
        case .buffering:
            if bodyBytes > maxBody {
                request.keepAlive = false
                respondLocally(.bodyTooLarge)
                return
            }
            pendingBody.append(.body(.byteBuffer(buffer)))
            pendingBodyBytes += buffer.readableBytes
            if pendingBodyBytes > Self.maxPendingBody {
                // Larger than we hold: stream it (the buffered part goes first).
                proceedToOrigin(now: now)
            }
        case .discarding, .idle, .closed, .tunnel, .held, .coalescing:
            break
        }
    }

    private func receivedEnd(_ trailers: HTTPHeaders?, context: ChannelHandlerContext) {
        requestEnded = true
        timeouts.requestEnded()
        switch phase {
        case .proxying:
            guard let upstream else { return }
            upstream.handler.write(.end(trailers))
            upstream.handler.flush()
            upstream.handler.awaitResponse(timeout: request.siteConfig.limits.originResponseTimeout)
        case .connecting:
            pendingBody.append(.end(trailers))
        case .buffering:
            pendingBody.append(.end(trailers))
            proceedToOrigin(now: loop.eventLoop.now)
        case .discarding:
            phase = .idle
            timeouts.responseEnded(now: loop.eventLoop.now)
            armTimer(now: loop.eventLoop.now)
            if !queued.isEmpty { drainQueue() }
        case .idle, .closed, .tunnel, .held, .coalescing:
            break
        }
    }

    private func setUpstreamBlocked(_ blocked: Bool) {
        upstreamBlocked = blocked
        if !blocked, readPending, let context {
            readPending = false
            context.read()
        }
    }

    // MARK: - Response side (UpstreamDelegate)

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        guard let context, phase == .proxying else { return }
        switch part {
        case .head(let head):
            responseStarted = true
            let now = loop.eventLoop.now
            OriginFeedbackPhase.run(request, response: head, pool: pool, loop: loop, now: now)
            upstreamKeepAlive = head.isKeepAlive
            if let upgrade = request.upgrade {
                if head.status == .switchingProtocols {
                    // The decoder still delivers this response's end; the switch happens there.
                    upgradeAccepted = true
                    sendSwitchingProtocols(context: context, response: head, protocolName: upgrade)
                    return
                }
                // The origin declined the upgrade: the client's decoder has stopped at the upgrade
                // request, so this connection ends with this response.
                request.keepAlive = false
            }
            var response = head
            ResponseHeadersPhase.prepare(&request, response: &response)
            if let key = request.fillKey, let site = request.site {
                fill = CacheFill(key: key, response: response, method: request.head.method, config: site.config.cache, allocator: context.channel.allocator)
                if fill == nil { endFill() }
            }
            ResponseHeadersPhase.finish(&request, response: &response, loop: loop)
            responseStatus = Int(head.status.code)
            responseBytes = 0
            decision = "proxied"
            if let traffic = request.site?.defence {
                traffic.traffic.latencySumMicros += Int((now - request.start).nanoseconds / 1000)
                traffic.traffic.latencyCount += 1
            }
            context.write(wrapOutboundOut(.head(response)), promise: nil)
        case .body(let buffer):
            if fill?.append(buffer) == false { endFill() }
            responseBytes += buffer.readableBytes
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end(let trailers):
            if let fill, let site = request.site { fill.store(in: &site.cache, now: loop.eventLoop.now) }
            endFill()
            if upgradeAccepted {
                startTunnel(context: context)
                return
            }
            loop.counters.proxied += 1
            let reusable = upstreamKeepAlive && requestEnded
            if let upstream, let pool {
                self.upstream = nil
                self.pool = nil
                pool.release(upstream, reusable: reusable)
            }
            if !requestEnded { request.keepAlive = false }
            finishResponse(context: context, trailers: trailers)
        }
    }

    /// The origin accepted a protocol upgrade: pass its 101 on to the client.
    private func sendSwitchingProtocols(context: ChannelHandlerContext, response: HTTPResponseHead, protocolName: String) {
        var head = response
        head.version = request.head.version
        let upgradeTo = head.headers.first(name: "upgrade") ?? protocolName
        ForwardingHeaders.prepareResponse(&head.headers)
        head.headers.add(name: "Upgrade", value: upgradeTo)
        head.headers.add(name: "Connection", value: "Upgrade")
        context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
    }

    /// After the 101: join the two connections byte for byte and step out of the way.
    private func startTunnel(context: ChannelHandlerContext) {
        guard let upstream, let pool else { return }
        phase = .tunnel
        cancelTimer()
        loop.counters.proxied += 1
        self.upstream = nil
        self.pool = nil
        pool.detach(upstream)
        let (clientGlue, upstreamGlue) = GlueHandler.matchedPair()
        do {
            let up = upstream.channel.pipeline.syncOperations
            try up.addHandler(upstreamGlue)
            up.removeHandler(upstream.handler, promise: nil)
            up.removeHandler(try up.handler(type: HTTPRequestEncoder.self), promise: nil)
            // Removing the decoder hands any bytes it buffered after the 101 on to the glue.
            up.removeHandler(try up.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self), promise: nil)
            let down = context.pipeline.syncOperations
            try down.addHandler(clientGlue)
            down.removeHandler(try down.handler(type: HTTPResponseEncoder.self), promise: nil)
            down.removeHandler(try down.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self), promise: nil)
            down.removeHandler(try down.handler(type: ClientActivityHandler.self), promise: nil)
            down.removeHandler(context: context, promise: nil)
        } catch {
            loop.reject(.originError, client: request.client, detail: "upgrade failed: \(error)")
            upstream.channel.close(promise: nil)
            context.close(promise: nil)
        }
    }

    func upstreamReadComplete() {
        context?.flush()
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        setUpstreamBlocked(!isWritable)
    }

    func upstreamFailed(_ error: any Error) {
        guard phase == .proxying, let upstream, let pool else { return }
        self.upstream = nil
        pool.release(upstream, reusable: false)
        let timedOut: Bool
        if case UpstreamError.timeout = error { timedOut = true } else { timedOut = false }
        if responseStarted {
            // Part of the response is already with the client: all we can do is cut it short.
            endFill()
            pool.health.requestFailed(now: loop.eventLoop.now)
            loop.reject(timedOut ? .originTimeout : .originError, client: request.client, detail: "\(pool.address) failed mid-response")
            closeNow()
            return
        }
        // A pooled connection the origin had already closed: retry once on a fresh one, if nothing
        // of a body was sent (only bodiless requests can be replayed safely).
        if !timedOut, upstream.requestsSent > 1, !retried, !request.hasBody {
            retried = true
            self.pool = nil
            acquire(from: pool, now: .now())
            return
        }
        pool.health.requestFailed(now: loop.eventLoop.now)
        self.pool = nil
        respondLocally(timedOut ? .originTimeout : .originError, detail: "\(pool.address): \(error)")
    }

    // MARK: - Answers the gateway writes

    /// Answers the current request with a response the gateway made (challenge pages, redirects).
    private func sendGenerated(_ status: HTTPResponseStatus, body: String, headers extra: [(String, String)], decision: String) {
        guard let context, phase != .closed else { return }
        responseStatus = Int(status.code)
        responseBytes = request.head.method == .HEAD ? 0 : body.utf8.count
        self.decision = decision
        decisionReason = nil
        endFill()
        pendingBody.removeAll()
        pendingBodyBytes = 0
        if !requestEnded && request.hasBody { request.keepAlive = false }
        var headers = HTTPHeaders()
        headers.reserveCapacity(extra.count + 5)
        headers.add(name: "Content-Type", value: "text/html; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "X-Request-Id", value: request.id)
        for (name, value) in extra { headers.add(name: name, value: value) }
        if !request.keepAlive || loop.draining {
            request.keepAlive = false
            headers.add(name: "Connection", value: "close")
        }
        responseStarted = true
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.head.version, status: status, headers: headers))), promise: nil)
        if request.head.method != .HEAD, !body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        }
        if !requestEnded { phase = .discarding }
        finishResponse(context: context, trailers: nil)
    }

    // MARK: - Finishing

    private func finishResponse(context: ChannelHandlerContext, trailers: HTTPHeaders?) {
        let micros = (loop.eventLoop.now - request.start).nanoseconds / 1000
        loop.counters.observeLatency(micros: Int(micros))
        if let log = loop.accessLog {
            log.record(
                AccessLog.Entry(
                    site: request.site?.name ?? "", client: request.client, method: request.head.method,
                    target: request.forwardHead?.uri ?? request.accepted.target, status: responseStatus,
                    bytes: responseBytes, durationMicros: micros, decision: decision,
                    reason: decisionReason, requestID: request.id, agent: request.head.headers.first(name: "user-agent"),
                    fingerprint: facts.fingerprint
                )
            )
        }
        decisionReason = nil
        if request.keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
            phase = requestEnded ? .idle : .discarding
            let now = loop.eventLoop.now
            if phase == .idle { timeouts.responseEnded(now: now) }
            request.forwardHead = nil
            armTimer(now: now)
            if !queued.isEmpty { drainQueue() }
        } else {
            phase = .closed
            let promise = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: promise)
            promise.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    /// Answers the current request with a gateway page for `reason`, counted and logged; when the
    /// origin failed and a stale copy is at hand, that copy is served instead (stale-if-error).
    private func respondLocally(_ reason: RejectReason, retryAfter: Int? = nil, detail: String? = nil) {
        guard let context, phase != .closed else { return }
        endFill()
        let site = request.site
        switch reason {
        case .originUnavailable, .originTimeout, .originError, .originQueueFull:
            // A copy stored meanwhile (by a background refresh or another request) beats an error page.
            let now = loop.eventLoop.now
            if let key = request.cacheKey, let site, !responseStarted, let (entry, fresh) = site.cache.lookup(key, now: now) {
                request.cacheKey = nil
                loop.rejectionLog.log(reason: reason, client: request.client, detail: "served a cached copy: \(detail ?? "")")
                serveFromCache(entry, stale: !fresh, now: now)
                return
            }
        default:
            break
        }
        loop.reject(reason, client: request.client, detail: detail)
        switch reason {
        case .originQueueFull: site?.defence.traffic.shed += 1
        case .originUnavailable, .originTimeout, .originError: site?.defence.traffic.originErrors += 1
        default: break
        }
        if responseStarted {
            closeNow()
            return
        }
        pendingBody.removeAll()
        pendingBodyBytes = 0
        if reason.closesConnection || (!requestEnded && request.hasBody) { request.keepAlive = false }
        decision = "rejected"
        decisionReason = reason.rawValue
        let (h, body) = loop.pageTemplate(reason, json: ErrorPage.wantsJSON(request.head.headers)).render(
            requestID: request.id.isEmpty ? loop.nextRequestID() : request.id,
            close: !request.keepAlive,
            retryAfterSeconds: retryAfter,
            version: request.head.version,
            allocator: context.channel.allocator
        )
        responseStarted = true
        responseStatus = Int(h.status.code)
        responseBytes = body.readableBytes
        context.write(wrapOutboundOut(.head(h)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        setUpstreamBlocked(false)
        finishResponse(context: context, trailers: nil)
    }

    private func closeNow() {
        phase = .closed
        context?.close(promise: nil)
    }

    // MARK: - Deadlines

    private func armTimer(now: NIODeadline) {
        guard let context, phase != .closed else { return }
        switch timeouts.check(now: now) {
        case .expired(let reason):
            expired(reason)
        case .ok(let next):
            guard let next else { return }
            if let at = timerAt, at <= next { return }
            timer?.cancel()
            timerAt = next
            timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: next) {
                self.timer = nil
                self.timerAt = nil
                self.armTimer(now: self.loop.eventLoop.now)
            }
        }
    }

    private func expired(_ reason: RejectReason) {
        switch reason {
        case .bodyTimeout, .bodyTooSlow:
            request.keepAlive = false
            if let upstream, let pool {
                self.upstream = nil
                self.pool = nil
                pool.release(upstream, reusable: false)
            }
            if responseStarted {
                loop.reject(reason, client: request.client)
                closeNow()
            } else {
                respondLocally(reason)
            }
        default:
            // Header, idle and send timeouts: a client that is not talking or not reading gets no page.
            loop.reject(reason, client: request.client)
            closeNow()
        }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
        timerAt = nil
    }

    /// Connection-phase keys from the listener, request-phase keys from the site.
    static func merged(listener: Limits, site: Limits) -> Limits {
        var l = listener
        l.bodyTimeout = site.bodyTimeout
        l.bodyMinRate = site.bodyMinRate
        l.maxBodyBytes = site.maxBodyBytes
        l.maxURIBytes = site.maxURIBytes
        l.originConnectTimeout = site.originConnectTimeout
        l.originResponseTimeout = site.originResponseTimeout
        return l
    }
}

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
extension ClientHandler: Sendable {}

@available(*, unavailable)
extension ClientActivityHandler: Sendable {}
