import NIOCore
import NIOHTTP1
import RampartCore

/// The answers the gateway writes itself (refusals, pages, cached copies) and the end of every
/// response: the access log line, then the next request on the connection or its close.
extension ClientHandler {
    /// The fetch this request waited for has ended: answer from the cache if it stored something,
    /// else go to the origin like any other request.
    func coalescedFillEnded(key: String) {
        let now = loop.eventLoop.now
        if let site = request.site, let (entry, fresh) = site.cache.lookup(key, now: now) {
            serveFromCache(entry, stale: !fresh, now: now)
            return
        }
        state = .idle
        proceedToOrigin(now: now)
    }

    /// Answers the current request with a cached response.
    func serveFromCache(_ entry: CachedResponse, stale: Bool, now: NIODeadline) {
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
        answer = AnswerRecord(status: Int(entry.status.code), bytes: request.head.method == .HEAD ? 0 : entry.body.readableBytes, decision: stale ? "cache_stale" : "cache")
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if request.head.method != .HEAD { context.write(wrapOutboundOut(.body(.byteBuffer(entry.body))), promise: nil) }
        state.answeredLocally(requestEnded: requestEnded)
        finishResponse(context: context, trailers: nil)
    }

    /// Ends this request's cache fetch (stored or not) so waiting requests move on.
    func endFill() {
        fill = nil
        if let key = request.fillKey {
            request.fillKey = nil
            loop.finishFill(key)
        }
    }

    /// Answers the current request with a response the gateway made (challenge pages, redirects).
    func sendGenerated(_ status: HTTPResponseStatus, body: String, headers extra: [(String, String)], decision: String) {
        guard let context, !state.isClosed else { return }
        answer = AnswerRecord(status: Int(status.code), bytes: request.head.method == .HEAD ? 0 : body.utf8.count, decision: decision)
        endFill()
        if !requestEnded && request.hasBody { request.keepAlive = false }
        var headers = HTTPHeaders()
        headers.reserveCapacity(extra.count + 5)
        headers.add(name: "Content-Type", value: "text/html; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "X-Request-Id", value: request.id)
        for (name, value) in extra { headers.add(name: name, value: value) }
        ResponseHeadersPhase.connectionHeader(&request, headers: &headers, loop: loop)
        responseStarted = true
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.head.version, status: status, headers: headers))), promise: nil)
        if request.head.method != .HEAD, !body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        }
        state.answeredLocally(requestEnded: requestEnded)
        finishResponse(context: context, trailers: nil)
    }

    /// Answers the current request with a gateway page for `reason`, counted and logged; when the
    /// origin failed and a stale copy is at hand, that copy is served instead (stale-if-error).
    func respondLocally(_ reason: RejectReason, retryAfter: Int? = nil, detail: String? = nil) {
        guard let context, !state.isClosed else { return }
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
        if reason.blamesClient { site?.defence.recordRefused(request.client) }
        switch reason {
        case .originQueueFull: site?.defence.traffic.shed += 1
        case .originUnavailable, .originTimeout, .originError: site?.defence.traffic.originErrors += 1
        default: break
        }
        if responseStarted {
            closeNow()
            return
        }
        state.answeredLocally(requestEnded: requestEnded)
        if reason.closesConnection || (!requestEnded && request.hasBody) { request.keepAlive = false }
        // Pre-rendered per loop: only the request id, the version and the connection header vary.
        let (head, body) = loop.pageTemplate(reason, json: ErrorPage.wantsJSON(request.head.headers)).render(
            requestID: request.id.isEmpty ? loop.nextRequestID() : request.id,
            close: !request.keepAlive,
            retryAfterSeconds: retryAfter,
            version: request.head.version,
            allocator: context.channel.allocator
        )
        responseStarted = true
        answer = AnswerRecord(status: Int(head.status.code), bytes: body.readableBytes, decision: "rejected", reason: reason.rawValue)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        holdReads(false)
        finishResponse(context: context, trailers: nil)
    }

    /// The response is complete: the access log line, then the next request (or the rest of this
    /// one's body, dropped) on a kept connection, or the close.
    func finishResponse(context: ChannelHandlerContext, trailers: HTTPHeaders?) {
        let micros = (loop.eventLoop.now - request.start).nanoseconds / 1000
        loop.counters.observeLatency(micros: Int(micros))
        if let log = loop.accessLog {
            log.record(
                AccessLog.Entry(
                    site: request.site?.name ?? "", client: request.client, method: request.head.method,
                    target: request.forwardHead?.uri ?? request.accepted.target, status: answer.status,
                    bytes: answer.bytes, durationMicros: micros, decision: answer.decision,
                    reason: answer.reason, requestID: request.id, agent: request.head.headers.first(name: "user-agent"),
                    fingerprint: facts.fingerprint
                )
            )
        }
        if request.keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
            state = requestEnded ? .idle : .discarding
            let now = loop.eventLoop.now
            if requestEnded { timeouts.responseEnded(now: now) }
            request.forwardHead = nil
            armTimer(now: now)
            drainQueue()
        } else {
            state = .closed
            let promise = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: promise)
            promise.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    func closeNow() {
        state = .closed
        context?.close(promise: nil)
    }
}
