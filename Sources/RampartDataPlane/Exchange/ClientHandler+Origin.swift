import NIOCore
import NIOHTTP1
import RampartCore

/// The origin side of the exchange: taking a connection from the site's pool (or a place in its
/// queue), streaming the request body, and the response back through the response phases.
extension ClientHandler {
    /// Sends the current request on to an origin of its site.
    func proceedToOrigin(now: NIODeadline) {
        guard let context, let site = request.site else { return }
        if expectsContinue {
            // The request passed every check: ask the client for its body (the origin never sees Expect).
            expectsContinue = false
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: request.head.version, status: .continue))), promise: nil)
        }
        // A body is collected before an origin connection is taken: a small one whole, a larger
        // one until its first `PendingBody.limit` bytes are in (then it streams). So slow uploads
        // (slow POST, login floods trickling bytes, a large Content-Length sent a byte a second)
        // hold no origin connection; the body timeouts end them at the gateway.
        if request.hasBody, !requestEnded, request.upgrade == nil {
            if case .buffering = state {} else {
                state.startBuffering()
                return
            }
        }
        guard let pool = site.pickPool(now: now, counters: &loop.counters) else {
            respondLocally(.originUnavailable, retryAfter: 5)
            return
        }
        acquire(from: pool, now: now)
    }

    func acquire(from pool: OriginPool, now: NIODeadline) {
        guard let site = request.site else { return }
        state.startConnecting(to: pool)
        site.defence.traffic.toOrigin += 1
        if pool.queued > site.defence.traffic.queuePeak { site.defence.traffic.queuePeak = pool.queued }
        if let idle = pool.acquireIdle() {
            startProxying(idle, pool: pool)
            return
        }
        let generation = requestsOnConnection
        let result = pool.acquire(
            now: now, priority: OriginQueuePhase.priority(request, loop: loop, now: now), first: OriginQueuePhase.first(request, loop: loop),
            recheck: OriginQueuePhase.recheck(request)
        ) {
            [self] result in
            self.connectionArrived(result, pool: pool, generation: generation)
        }
        switch result {
        case .ready(let conn):
            startProxying(conn, pool: pool)
        case .pending:
            break
        case .unavailable(let reason):
            state.connectFailed()
            respondLocally(reason, retryAfter: 5)
        }
    }

    private func connectionArrived(_ result: Result<UpstreamConnection, any Error>, pool: OriginPool, generation: Int) {
        let stillWanted = state.isConnecting(to: pool) && requestsOnConnection == generation
        switch result {
        case .success(let conn):
            if stillWanted {
                startProxying(conn, pool: pool)
            } else {
                pool.release(conn, reusable: true)
            }
        case .failure(let error):
            pool.abandon()
            guard stillWanted else { return }
            state.connectFailed()
            let now = loop.eventLoop.now
            switch error {
            case PoolError.queueTimeout, PoolError.shed:
                respondLocally(.originQueueFull, retryAfter: 5)
                return
            case PoolError.recheck:
                // The site started challenging while this request waited: decide it as a new one would be.
                var verdict = request.credentialAttempt ? CredentialPhase.decide(&request, loop: loop, now: now) : .next
                if case .next = verdict { verdict = ChallengePhase.decide(&request, loop: loop, forced: false, now: now) }
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

    private func startProxying(_ conn: UpstreamConnection, pool: OriginPool) {
        guard let head = request.forwardHead else {
            pool.release(conn, reusable: true)
            return
        }
        var kept = state.startProxying(OriginLeg(pool: pool, connection: conn, sentAt: loop.eventLoop.now))
        conn.requestsSent += 1
        conn.handler.delegate = self
        conn.handler.write(.head(head))
        while let part = kept.popFirst() { conn.handler.write(part) }
        conn.handler.flush()
        if requestEnded { conn.handler.awaitResponse(timeout: request.routed.config.limits.originResponseTimeout) }
        if !(context?.channel.isWritable ?? true) { conn.handler.pauseReads() }
        holdReads(!conn.channel.isWritable)
    }

    /// Gives the origin connection back to its pool (reusable only after a clean exchange) and
    /// leaves the proxying state; nothing when there is none.
    func releaseOrigin(reusable: Bool) {
        guard let leg = state.leaveOrigin() else { return }
        leg.pool.release(leg.connection, reusable: reusable)
    }

    func receivedBody(_ buffer: ByteBuffer) {
        let now = loop.eventLoop.now
        timeouts.bodyReceived(count: buffer.readableBytes, now: now)
        bodyBytes += buffer.readableBytes
        let maxBody = request.site?.config.limits.maxBodyBytes ?? facts.limits.maxBodyBytes
        switch state.requestBody(buffer, overLimit: bodyBytes > maxBody) {
        case .forward(let leg):
            leg.connection.handler.write(.body(.byteBuffer(buffer)))
        case .kept(let hold):
            if hold { holdReads(true) }
        case .streamNow:
            // Larger than we hold: stream it (the collected part goes first).
            proceedToOrigin(now: now)
        case .tooLarge:
            request.keepAlive = false
            releaseOrigin(reusable: false)
            if responseStarted {
                loop.reject(.bodyTooLarge, client: request.client)
                closeNow()
            } else {
                respondLocally(.bodyTooLarge)
            }
        case .dropped:
            break
        }
    }

    func receivedEnd(_ trailers: HTTPHeaders?) {
        requestEnded = true
        timeouts.requestEnded()
        switch state.requestEnd(trailers) {
        case .forward(let leg):
            leg.connection.handler.write(.end(trailers))
            leg.connection.handler.flush()
            leg.connection.handler.awaitResponse(timeout: request.routed.config.limits.originResponseTimeout)
        case .proceed:
            proceedToOrigin(now: loop.eventLoop.now)
        case .becameIdle:
            let now = loop.eventLoop.now
            timeouts.responseEnded(now: now)
            armTimer(now: now)
            drainQueue()
        case .kept, .none:
            break
        }
    }

    // MARK: - UpstreamDelegate

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        guard let context, var leg = state.leg else { return }
        switch part {
        case .head(let head):
            responseStarted = true
            let now = loop.eventLoop.now
            OriginFeedbackPhase.run(&request, response: head, pool: leg.pool, loop: loop, now: now)
            let code = head.status.code
            leg.pool.originAnswered(latency: now - leg.sentAt, overloaded: code == 502 || code == 503 || code == 504, now: now)
            leg.keepAlive = head.isKeepAlive
            if let upgrade = request.upgrade {
                if head.status == .switchingProtocols {
                    // The decoder still delivers this response's end; the switch happens there.
                    leg.upgradeAccepted = true
                    state = .proxying(leg)
                    sendSwitchingProtocols(context: context, response: head, protocolName: upgrade)
                    return
                }
                // The origin declined the upgrade: the client's decoder has stopped at the upgrade
                // request, so this connection ends with this response.
                request.keepAlive = false
            }
            state = .proxying(leg)
            var response = head
            ResponseHeadersPhase.prepare(&request, response: &response)
            if let key = request.fillKey, let site = request.site {
                fill = CacheFill(key: key, response: response, method: request.head.method, config: site.config.cache, allocator: context.channel.allocator)
                if fill == nil { endFill() }
            }
            ResponseHeadersPhase.finish(&request, response: &response, loop: loop)
            answer = AnswerRecord(status: Int(head.status.code), bytes: 0, decision: "proxied")
            if let defence = request.site?.defence {
                defence.traffic.latencySumMicros += Int((now - request.start).nanoseconds / 1000)
                defence.traffic.latencyCount += 1
            }
            context.write(wrapOutboundOut(.head(response)), promise: nil)
        case .body(let buffer):
            if fill?.append(buffer) == false { endFill() }
            answer.bytes += buffer.readableBytes
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end(let trailers):
            if let fill, let site = request.site { fill.store(in: &site.cache, now: loop.eventLoop.now) }
            endFill()
            if leg.upgradeAccepted {
                startTunnel(context: context, leg: leg)
                return
            }
            loop.counters.proxied += 1
            releaseOrigin(reusable: leg.keepAlive && requestEnded)
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
    private func startTunnel(context: ChannelHandlerContext, leg: OriginLeg) {
        state = .tunnel
        cancelTimer()
        loop.counters.proxied += 1
        leg.pool.detach(leg.connection)
        let upstream = leg.connection
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
        holdReads(!isWritable)
    }

    func upstreamFailed(_ error: any Error) {
        guard let leg = state.leg else { return }
        releaseOrigin(reusable: false)
        let pool = leg.pool
        let timedOut: Bool
        if case UpstreamError.timeout = error { timedOut = true } else { timedOut = false }
        if loop.cutting {
            // The shutdown closed the origin connection past the drain's bound: cut this one too.
            closeNow()
            return
        }
        if timedOut { pool.originAnswered(latency: loop.eventLoop.now - leg.sentAt, overloaded: true, now: loop.eventLoop.now) }
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
        if !timedOut, leg.connection.requestsSent > 1, !retried, !request.hasBody {
            retried = true
            acquire(from: pool, now: loop.eventLoop.now)
            return
        }
        pool.health.requestFailed(now: loop.eventLoop.now)
        respondLocally(timedOut ? .originTimeout : .originError, detail: "\(pool.address): \(error)")
    }
}
