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
    private let listener: Int
    private let scheme: String
    /// The connection's client address (the TCP peer, or the PROXY protocol source).
    var peer: IPAddress {
        didSet { peerText = nil }
    }
    private var peerText: String?
    private var timeouts: ConnectionTimeouts
    private var context: ChannelHandlerContext?
    private var phase = Phase.idle
    private var requestsOnConnection = 0

    // The current request.
    private var forwardHead: HTTPRequestHead?
    private var clientVersion = HTTPVersion.http1_1
    private var clientIP: IPAddress
    private var requestID = ""
    private var requestHeaders = HTTPHeaders()
    private var keepAlive = true
    private var requestEnded = false
    private var responseStarted = false
    private var hasBody = false
    private var bodyBytes = 0
    private var siteLimits = Limits()
    private var pool: OriginPool?
    private var upstream: UpstreamConnection?
    private var upstreamKeepAlive = true
    /// The current request asks for a protocol upgrade (`Upgrade` + `Connection: upgrade`).
    private var upgrade: String?
    /// The origin answered the upgrade with 101; the tunnel starts at the end of that response.
    private var upgradeAccepted = false
    private var requestMethod = HTTPMethod.GET
    private var declaredLength: Int?
    private var apiKey: PresentedAPIKey?
    private var credential: IPAddress?
    private var expectsContinue = false
    // The micro-cache: the key this request is fetching for the cache, what it captured so far,
    // and a stale copy to fall back on if the origin fails.
    private var fillKey: String?
    private var fillHead: HTTPResponseHead?
    private var fillTTL: TimeAmount = .zero
    private var fillBody: ByteBuffer?
    /// The current request's cache key, when it may be answered from the cache.
    private var cacheKey: String?
    private var retried = false
    private var siteIndex = 0
    /// A `Set-Cookie` the gateway adds to this request's response (a clearance handed out or rebound).
    private var setCookie: String?
    /// The request showed a valid clearance while the site was challenging: it goes first in queues.
    private var cleared = false
    /// The request went through the challenge stage (so a mode change need not decide it again).
    private var challengeChecked = false
    // For the access log: what was answered and why.
    private var requestTarget = "/"
    private var responseStatus = 0
    private var responseBytes = 0
    private var decision = "proxied"
    private var decisionReason: String?
    /// When the request head arrived (origin latency for detection).
    private var requestStart = NIODeadline.uptimeNanoseconds(0)
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

    /// The JA4 fingerprint of the connection's TLS ClientHello (nil on plain HTTP).
    let fingerprint: String?

    init(loop: LoopContext, listener: Int, peer: IPAddress, scheme: String, fingerprint: String? = nil, now: NIODeadline) {
        self.fingerprint = fingerprint
        self.loop = loop
        self.listener = listener
        self.peer = peer
        self.clientIP = peer
        self.scheme = scheme
        self.timeouts = ConnectionTimeouts(limits: loop.config.source.listeners[listener].limits, now: now)
    }

    private var listenerLimits: Limits { loop.config.source.listeners[listener].limits }

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
            keepAlive = false
            if phase == .idle { closeNow() }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard phase != .closed else { return }
        if let parseError = error as? HTTPParserError {
            let reason = Self.reason(for: parseError)
            // Malformed requests count toward a ban like any other abuse.
            _ = loop.strike(clientIP, reason: reason)
            if responseStarted || phase == .proxying && responseStarted {
                loop.reject(reason, client: clientIP)
                closeNow()
            } else {
                keepAlive = false
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

    private func receivedHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard phase == .idle else {
            // The decoder delivers one request at a time and pipelined ones are queued: refuse rather than mix two.
            closeNow()
            return
        }
        let now = loop.eventLoop.now
        requestsOnConnection += 1
        loop.counters.requests += 1
        let config = loop.config
        requestID = loop.nextRequestID()
        clientVersion = head.version
        requestMethod = head.method
        requestTarget = head.uri
        requestStart = now
        requestHeaders = head.headers
        requestEnded = false
        responseStarted = false
        retried = false
        bodyBytes = 0
        upstreamKeepAlive = true
        keepAlive = head.isKeepAlive && requestsOnConnection < listenerLimits.maxRequestsPerConnection && !loop.draining
        clientIP = peer
        if !config.trusted.isEmpty, config.trusted.contains(peer) {
            clientIP = ClientAddressResolver.resolve(
                peer: peer,
                forwardedFor: head.headers["x-forwarded-for"],
                trusted: config.trusted
            )
        }

        let accepted: RequestChecks.Accepted
        switch RequestChecks.framing(head) {
        case .failure(let e):
            hasBody = true  // framing is unknown: never try to read on
            keepAlive = false
            timeouts.headReceived(now: now, expectsBody: false)
            // Malformed requests count toward a ban like any other abuse.
            _ = loop.strike(clientIP, reason: e.reason)
            respondLocally(e.reason)
            return
        case .success(let a):
            accepted = a
        }
        requestTarget = accepted.target
        hasBody = accepted.chunked || (accepted.contentLength ?? 0) > 0
        declaredLength = accepted.contentLength
        timeouts.headReceived(now: now, expectsBody: hasBody)

        guard let siteIndex = config.router.route(host: accepted.host) else {
            respondLocally(.unknownHost, detail: accepted.host)
            return
        }
        let site = config.sites[siteIndex]
        self.siteIndex = siteIndex
        siteLimits = site.limits
        timeouts.limits = Self.merged(listener: listenerLimits, site: site.limits)
        armTimer(now: now)
        if let reason = RequestChecks.sizes(accepted, head: head, limits: site.limits) {
            if reason == .bodyTooLarge { keepAlive = false }
            respondLocally(reason)
            return
        }
        if site.httpsRedirect, scheme == "http", let host = accepted.host {
            // Plain HTTP for a site that wants HTTPS: a permanent redirect, nothing forwarded.
            let location = "https://\(host.split(separator: ":").first.map(String.init) ?? host)\(accepted.target)"
            sendGenerated(.movedPermanently, body: "", headers: [("Location", location)], decision: "https_redirect")
            return
        }
        let defence = loop.defence[siteIndex]
        defence.record(client: clientIP, method: head.method, target: accepted.target, headers: head.headers, fingerprint: fingerprint)
        // Rules by TLS stack: a denied fingerprint is refused here; a challenged one meets the
        // challenge whatever the site's mode.
        let byFingerprint = site.fingerprints.verdict(fingerprint)
        if byFingerprint == .deny {
            respondLocally(.fingerprintDenied, detail: fingerprint)
            return
        }
        // Rules by country and network (docs/edge-filters.md), decided in RampartCore's GeoFilter.
        let byGeo = loop.geo?.verdict(site: siteIndex, client: clientIP, now: Int64(now.uptimeNanoseconds)) ?? .pass
        if byGeo == .deny { return respondLocally(.geoDenied) }
        if case .limited(let retry) = byGeo { return respondLocally(.rateLimited, retryAfter: retry, detail: "geo_rules limit") }
        setCookie = nil
        cleared = false
        challengeChecked = false
        // Only sites that use keys pay for looking them up.
        apiKey = site.apiKeys.isEmpty && !site.bearerCredentials && !loop.limiters[siteIndex].usesAPIKeys
            ? nil : PresentedAPIKey.find(in: head.headers, configured: site.apiKeys)
        // Session cookies named in the config, else the ones the origin was seen to set.
        let sessionCookies = site.sessionCookies.isEmpty ? defence.learnedCookies : site.sessionCookies
        credential = (sessionCookies.isEmpty && !site.bearerCredentials) ? nil
            : CredentialKey.find(in: head.headers, cookies: sessionCookies, bearer: site.bearerCredentials, apiKey: apiKey)
        let verdict = loop.limiters[siteIndex].check(
            client: clientIP, method: head.method, target: accepted.target, apiKey: apiKey, fingerprint: fingerprint, now: Int64(now.uptimeNanoseconds)
        )
        switch verdict {
        case .allowed(let shadowHits):
            for rule in shadowHits {
                loop.counters.shadowLimited += 1
                loop.rejectionLog.log(reason: .rateLimited, client: clientIP, detail: "shadow rule \(rule) would have refused")
            }
        case .limited(let rule, let action, let retryAfter):
            defence.traffic.limited += 1
            loop.knownGood.forget(clientIP)
            if let credential { loop.knownGoodCredentials.forget(credential) }
            // A source that keeps hitting the limit is banned: its connections are then refused at
            // accept, the cheapest "no" there is. This connection ends with this answer.
            if loop.strike(clientIP, reason: .rateLimited) { keepAlive = false }
            rateLimited(rule: rule, action: action, retryAfter: retryAfter, context: context)
            return
        }

        // The challenge stage: the gateway's own answer routes always; the rest when the mode asks.
        if accepted.target.utf8.count > 10, accepted.target.hasPrefix(ChallengeRoutes.prefix) {
            answerChallengeRoute(head, target: accepted.target, site: site, defence: defence)
            return
        }
        let forced = byFingerprint == .challenge || byGeo == .challenge
        if defence.mode != .normal || forced, site.challenge.enabled,
            !challengeStage(head, target: accepted.target, site: site, defence: defence, forced: forced, now: now)
        {
            return
        }

        if peerText == nil { peerText = peer.description }
        let peerIsTrusted = config.trusted.contains(peer)
        upgrade = Self.upgradeRequested(head)
        // The one request the origin parses: the normalised target and host every rule saw, the one
        // framing decided above, hop-by-hop, identity and routing-override headers gone.
        var forwarded = ForwardingHeaders.forwardedHead(
            head,
            accepted: accepted,
            hop: ForwardingHeaders.Hop(
                peer: peerText!, client: clientIP == peer ? peerText! : clientIP.description, peerIsTrusted: peerIsTrusted,
                scheme: scheme, requestID: requestID, version: head.version
            ),
            fallbackHost: accepted.host == nil ? Self.fallbackHost(site) : "",
            policy: site.requestHeaders,
            upgrade: upgrade
        )
        ChallengeRoutes.stripClearanceCookie(&forwarded.headers)
        forwardHead = forwarded
        expectsContinue = accepted.expectsContinue

        // The micro-cache: a fresh copy answers at once; a fetch already under way is waited for
        // (coalescing); a stale copy is kept in hand in case the origin fails.
        cacheKey = nil
        if upgrade == nil, accepted.framing == .none || accepted.framing == .length(0),
            let key = CachePolicy.key(method: head.method, target: accepted.target, host: accepted.host ?? "", headers: forwarded.headers, config: site.cache)
        {
            cacheKey = key
            if let (entry, fresh) = loop.caches[siteIndex].lookup(key, now: now) {
                if fresh {
                    serveFromCache(entry, label: "HIT", now: now)
                    return
                }
                // stale-while-revalidate: answer with the stale copy now; one background fetch
                // (started here unless one runs already) refreshes it.
                if !loop.isFilling(key), let pool = loop.pickPool(site: siteIndex, now: now) {
                    loop.startFill(key)
                    BackgroundFetch(loop: loop, site: siteIndex, key: key, head: forwarded, pool: pool).start(now: now)
                }
                serveFromCache(entry, label: "STALE", now: now)
                return
            } else if loop.isFilling(key) {
                let generation = requestsOnConnection
                let waiting = loop.waitForFill(key) { [self] in
                    guard self.phase == .coalescing, self.requestsOnConnection == generation else { return }
                    self.coalescedFillEnded(key: key)
                }
                if waiting {
                    phase = .coalescing
                    return
                }
            }
            if !loop.isFilling(key) {
                loop.startFill(key)
                fillKey = key
            }
        }
        proceedToOrigin(now: now)
    }

    /// Sends the current request on to an origin of its site.
    private func proceedToOrigin(now: NIODeadline) {
        guard let context else { return }
        if expectsContinue {
            // The request passed every check: ask the client for its body (the origin never sees Expect).
            expectsContinue = false
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: clientVersion, status: .continue))), promise: nil)
        }
        // A small body is collected before an origin connection is taken, so slow uploads (slow
        // POST, login floods trickling bytes) cost the origin nothing; larger ones stream.
        if hasBody, !requestEnded, upgrade == nil, phase != .buffering, (declaredLength ?? 0) <= Self.maxPendingBody {
            phase = .buffering
            return
        }
        guard let pool = loop.pickPool(site: siteIndex, now: now) else {
            respondLocally(.originUnavailable, retryAfter: 5)
            return
        }
        acquire(from: pool, now: now)
    }

    /// The fetch this request waited for has ended: answer from the cache if it stored something,
    /// else go to the origin like any other request.
    private func coalescedFillEnded(key: String) {
        let now = loop.eventLoop.now
        if let (entry, fresh) = loop.caches[siteIndex].lookup(key, now: now) {
            serveFromCache(entry, label: fresh ? "HIT" : "STALE", now: now)
            return
        }
        phase = .idle
        proceedToOrigin(now: now)
    }

    /// Answers the current request with a cached response.
    private func serveFromCache(_ entry: CachedResponse, label: String, now: NIODeadline) {
        guard let context else { return }
        if label == "STALE" { loop.counters.cacheStale += 1 } else { loop.counters.cacheHits += 1 }
        var head = HTTPResponseHead(version: clientVersion, status: entry.status, headers: entry.headers)
        let age = max(0, (now - entry.storedAt).nanoseconds / 1_000_000_000)
        head.headers.add(name: "Age", value: String(age))
        head.headers.add(name: "X-Cache", value: label)
        if let setCookie { head.headers.add(name: "Set-Cookie", value: setCookie) }
        loop.defence[siteIndex].traffic.cacheServed += 1
        if !keepAlive || loop.draining {
            keepAlive = false
            head.headers.add(name: "Connection", value: "close")
        } else if clientVersion == .http1_0 {
            head.headers.add(name: "Connection", value: "keep-alive")
        }
        responseStarted = true
        responseStatus = Int(entry.status.code)
        responseBytes = requestMethod == .HEAD ? 0 : entry.body.readableBytes
        decision = label == "STALE" ? "cache_stale" : "cache"
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if requestMethod != .HEAD { context.write(wrapOutboundOut(.body(.byteBuffer(entry.body))), promise: nil) }
        if !requestEnded { phase = .discarding }
        finishResponse(context: context, trailers: nil)
    }

    /// Ends this request's cache fetch (stored or not) so waiting requests move on.
    private func endFill() {
        if let key = fillKey {
            fillKey = nil
            fillHead = nil
            fillBody = nil
            loop.finishFill(key)
        }
    }

    /// Longest a tarpitted request is held before its 429.
    static let maxTarpit: TimeAmount = .seconds(5)

    private func rateLimited(rule: String, action: RateLimitAction, retryAfter: Int, context: ChannelHandlerContext) {
        switch action {
        case .reject:
            respondLocally(.rateLimited, retryAfter: retryAfter, detail: rule)
        case .close:
            loop.reject(.rateLimited, client: clientIP, detail: "\(rule): connection closed")
            closeNow()
        case .tarpit:
            // Hold the answer: the client's connection (and its patience) pays, not the origin.
            keepAlive = false
            phase = .held
            let generation = requestsOnConnection
            let delay = min(Self.maxTarpit, .seconds(Int64(retryAfter)))
            context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
                guard self.requestsOnConnection == generation, self.phase == .held else { return }
                self.respondLocally(.rateLimited, retryAfter: retryAfter, detail: "\(rule): tarpit")
            }
        }
    }

    private func acquire(from pool: OriginPool, now: NIODeadline) {
        self.pool = pool
        phase = .connecting
        let traffic = loop.defence[siteIndex]
        traffic.traffic.toOrigin += 1
        if pool.queued > traffic.traffic.queuePeak { traffic.traffic.queuePeak = pool.queued }
        let generation = requestsOnConnection
        let priority = cleared || apiKey?.configured == true || loop.hasPriority(clientIP, now: now)
            || credential.map { loop.knownGoodCredentials.contains($0, now: Int64(now.uptimeNanoseconds)) } == true
        let recheck = !challengeChecked && loop.config.sites[siteIndex].challenge.enabled
        let result = pool.acquire(now: now, priority: priority, recheck: recheck) { [self] result in
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
            switch error {
            case PoolError.queueTimeout, PoolError.shed:
                respondLocally(.originQueueFull, retryAfter: 5)
                return
            case PoolError.recheck:
                // The site started challenging while this request waited: decide it as a new one would be.
                let now = loop.eventLoop.now
                guard let forwarded = forwardHead else { return }
                let head = HTTPRequestHead(version: clientVersion, method: requestMethod, uri: forwarded.uri, headers: requestHeaders)
                if challengeStage(head, target: forwarded.uri, site: loop.config.sites[siteIndex], defence: loop.defence[siteIndex], forced: false, now: now) {
                    acquire(from: pool, now: now)
                }
                return
            default:
                break
            }
            let now = loop.eventLoop.now
            pool.health.requestFailed(now: now)
            loop.rejectionLog.log(reason: .originUnavailable, client: clientIP, detail: "\(pool.address): \(error)")
            // Nothing was sent yet: another origin of the site may take the request.
            if !retried, let other = loop.pickPool(site: siteIndex, now: now, excluding: pool) {
                retried = true
                acquire(from: other, now: now)
                return
            }
            respondLocally(.originUnavailable, retryAfter: 5, detail: "\(pool.address): \(error)")
        }
    }

    private func startProxying(_ conn: UpstreamConnection) {
        guard let head = forwardHead else { return }
        upstream = conn
        phase = .proxying
        conn.requestsSent += 1
        conn.handler.delegate = self
        conn.handler.write(.head(head))
        while let part = pendingBody.popFirst() { conn.handler.write(part) }
        pendingBodyBytes = 0
        conn.handler.flush()
        if requestEnded { conn.handler.awaitResponse(timeout: siteLimits.originResponseTimeout) }
        if !(context?.channel.isWritable ?? true) { conn.handler.pauseReads() }
        setUpstreamBlocked(!conn.channel.isWritable)
    }

    private func receivedBody(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        let now = loop.eventLoop.now
        timeouts.bodyReceived(count: buffer.readableBytes, now: now)
        bodyBytes += buffer.readableBytes
        switch phase {
        case .proxying, .connecting:
            if bodyBytes > siteLimits.maxBodyBytes {
                keepAlive = false
                if let upstream, let pool {
                    self.upstream = nil
                    pool.release(upstream, reusable: false)
                }
                if responseStarted {
                    loop.reject(.bodyTooLarge, client: clientIP)
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
            if bodyBytes > siteLimits.maxBodyBytes {
                keepAlive = false
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
            upstream.handler.awaitResponse(timeout: siteLimits.originResponseTimeout)
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
            let code = head.status.code
            if code == 502 || code == 503 || code == 504 {
                pool?.health.requestFailed(now: loop.eventLoop.now)
            } else {
                pool?.health.requestSucceeded()
            }
            if code < 400 {
                // The origin vouches for this client: it goes first when the origin is saturated.
                // Answers to form posts do not count for addresses (a login form answers 200 to
                // wrong passwords too); a credential the origin accepts does.
                let at = Int64(loop.eventLoop.now.uptimeNanoseconds)
                if requestMethod == .GET || requestMethod == .HEAD { loop.knownGood.recordSuccess(clientIP, now: at) }
                // A credential earns only what the origin accepts: a forged one gets 401/403 and nothing here.
                if let credential { loop.knownGoodCredentials.recordSuccess(credential, now: at) }
                let site = loop.config.sites[siteIndex]
                if site.sessionCookies.isEmpty, loop.defence[siteIndex].learnedCookies.count < SiteDefence.maxLearned {
                    loop.defence[siteIndex].learnCookies(from: head.headers)
                }
            }
            upstreamKeepAlive = head.isKeepAlive
            if let upgrade {
                if head.status == .switchingProtocols {
                    // The decoder still delivers this response's end; the switch happens there.
                    upgradeAccepted = true
                    sendSwitchingProtocols(context: context, response: head, protocolName: upgrade)
                    return
                }
                // The origin declined the upgrade: the client's decoder has stopped at the upgrade
                // request, so this connection ends with this response.
                keepAlive = false
            }
            var response = head
            response.version = clientVersion
            ForwardingHeaders.prepareResponse(&response.headers)
            if clientVersion == .http1_0, keepAlive, requestMethod != .HEAD, code >= 200, code != 204, code != 304,
                !response.headers.contains(name: "content-length")
            {
                // An HTTP/1.0 client knows no chunked coding: a body of unknown length ends with the connection.
                keepAlive = false
            }
            if fillKey != nil {
                if let ttl = CachePolicy.ttl(status: head.status, headers: response.headers, method: requestMethod, config: loop.config.sites[siteIndex].cache) {
                    fillHead = response
                    fillTTL = ttl
                    fillBody = context.channel.allocator.buffer(capacity: 0)
                } else {
                    endFill()
                }
            }
            if !keepAlive || loop.draining {
                keepAlive = false
                response.headers.add(name: "Connection", value: "close")
            } else if clientVersion == .http1_0 {
                response.headers.add(name: "Connection", value: "keep-alive")
            }
            responseStatus = Int(code)
            responseBytes = 0
            decision = "proxied"
            if let setCookie { response.headers.add(name: "Set-Cookie", value: setCookie) }
            if scheme == "https", let hsts = loop.config.sites[siteIndex].hsts { response.headers.replaceOrAdd(name: "Strict-Transport-Security", value: hsts) }
            let traffic = loop.defence[siteIndex]
            traffic.traffic.latencySumMicros += Int((loop.eventLoop.now - requestStart).nanoseconds / 1000)
            traffic.traffic.latencyCount += 1
            context.write(wrapOutboundOut(.head(response)), promise: nil)
        case .body(let buffer):
            if fillBody != nil {
                if fillBody!.readableBytes + buffer.readableBytes > loop.config.sites[siteIndex].cache.maxObjectBytes {
                    endFill()
                } else {
                    fillBody!.writeImmutableBuffer(buffer)
                }
            }
            responseBytes += buffer.readableBytes
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end(let trailers):
            if let key = fillKey, var head = fillHead, let body = fillBody {
                let now = loop.eventLoop.now
                head.headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
                let config = loop.config.sites[siteIndex].cache
                loop.caches[siteIndex].store(
                    key,
                    CachedResponse(
                        status: head.status,
                        headers: head.headers,
                        body: body,
                        storedAt: now,
                        freshUntil: now + fillTTL,
                        staleUntil: now + fillTTL + config.staleFor
                    )
                )
            }
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
            if !requestEnded { keepAlive = false }
            finishResponse(context: context, trailers: trailers)
        }
    }

    /// The origin accepted a protocol upgrade: pass its 101 on to the client.
    private func sendSwitchingProtocols(context: ChannelHandlerContext, response: HTTPResponseHead, protocolName: String) {
        var head = response
        head.version = clientVersion
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
            loop.reject(.originError, client: clientIP, detail: "upgrade failed: \(error)")
            upstream.channel.close(promise: nil)
            context.close(promise: nil)
        }
    }

    /// The protocol a request asks to upgrade to, when it does so properly (GET over HTTP/1.1,
    /// `Upgrade: websocket`, and `upgrade` among the `Connection` tokens). WebSocket is the only
    /// upgrade passed on: after a 101 the connection is a byte tunnel that no phase sees, and an
    /// `h2c` upgrade would let the client's next bytes reach the origin as unchecked requests.
    static func upgradeRequested(_ head: HTTPRequestHead) -> String? {
        guard head.method == .GET, head.version == .http1_1, let proto = head.headers.first(name: "upgrade"),
            Substring(proto).trimmingASCIISpaces().equalsASCIICaseInsensitive("websocket")
        else { return nil }
        for value in head.headers["connection"] {
            for token in value.split(separator: ",") where token.trimmingASCIISpaces().equalsASCIICaseInsensitive("upgrade") {
                return proto
            }
        }
        return nil
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
            loop.reject(timedOut ? .originTimeout : .originError, client: clientIP, detail: "\(pool.address) failed mid-response")
            closeNow()
            return
        }
        // A pooled connection the origin had already closed: retry once on a fresh one, if nothing
        // of a body was sent (only bodiless requests can be replayed safely).
        if !timedOut, upstream.requestsSent > 1, !retried, !hasBody {
            retried = true
            self.pool = nil
            acquire(from: pool, now: .now())
            return
        }
        pool.health.requestFailed(now: loop.eventLoop.now)
        self.pool = nil
        respondLocally(timedOut ? .originTimeout : .originError, detail: "\(pool.address): \(error)")
    }

    // MARK: - Challenges

    /// Runs the challenge stage for a site that is elevated or under attack. True: go on to the
    /// cache and the origin; false: the request was answered here.
    /// `forced`: the client's TLS fingerprint is on the site's challenge list, so it is treated as
    /// under attack with proof of work whatever the site's mode.
    private func challengeStage(_ head: HTTPRequestHead, target: String, site: SiteConfig, defence: SiteDefence, forced: Bool, now: NIODeadline) -> Bool {
        let path = target.firstIndex(of: "?").map { target[..<$0] } ?? Substring(target)
        if ChallengePolicy.isExempt(path: path, config: site.challenge) { return true }
        // An address the origin served well goes first in queues but is not excused from
        // challenges: a bot that got pages before the attack was detected would be, too.
        // Only keys the operator configured skip the challenge: an unknown key or bearer token earns
        // nothing (a flood would only need to add a random one). Sessions and tokens the origin has
        // accepted pass below, at one person's rate.
        let exempt = (site.challenge.exemptKeyHolders && apiKey?.configured == true)
            || (!loop.config.source.knownGood.allow.isEmpty && loop.config.source.knownGood.allow.contains(clientIP))
        if exempt { return true }
        if let credential, loop.knownGoodCredentials.contains(credential, now: Int64(now.uptimeNanoseconds)) {
            // A session the origin keeps vouching for passes, at one person's rate.
            if case .limited = defence.credentialBuckets.take(credential, now: Int64(now.uptimeNanoseconds)) {
                defence.traffic.clearanceLimited += 1
                if loop.strike(clientIP, reason: .clearanceLimited) { keepAlive = false }
                respondLocally(.clearanceLimited, retryAfter: 2)
                return false
            }
            challengeChecked = true
            cleared = true
            return true
        }
        let unix = unixNow()
        let mono = Int64(now.uptimeNanoseconds)
        let agent = head.headers.first(name: "user-agent") ?? ""
        var level: Clearance.Level?
        var clearanceKey: IPAddress?
        if let value = ChallengeRoutes.cookie(ChallengeRoutes.cookie, in: head.headers["cookie"]) {
            switch Clearance.verify(value, keys: &loop.keys, client: clientIP, userAgent: agent, now: unix) {
            case .success(let clearance):
                if defence.revoked.isBanned(clearance.key, now: mono) {
                    challengeFailed(detail: "revoked clearance")
                } else {
                    level = clearance.level
                    clearanceKey = clearance.key
                }
            case .failure(let failure):
                challengeFailed(detail: "clearance cookie: \(failure.rawValue)")
            }
        }
        let method: HTTPMethodName = head.method == .GET || head.method == .HEAD ? .get : .other
        var noCookies = false
        if level == nil {
            defence.traffic.uncleared += 1
            noCookies = defence.keepsNoCookies(clientIP, now: mono)
        } else {
            defence.traffic.cleared += 1
            defence.traffic.clearedTargets.add(hash: hashBytes(target.utf8))
        }
        let suspicious = noCookies || ChallengePolicy.isSuspiciousAgent(agent, config: site.challenge)
        switch ChallengePolicy.decide(
            mode: forced ? .underAttack : defence.mode, tier: forced ? .pow : defence.tier, method: method, exemptRoute: false, exempt: false,
            clearance: level, suspicious: suspicious
        ) {
        case .pass:
            challengeChecked = true
            if let key = clearanceKey {
                cleared = true
                loop.counters.clearedRequests += 1
                let (limited, revoke) = defence.clearanceOverLimit(key, now: mono)
                if limited {
                    defence.traffic.clearanceLimited += 1
                    if revoke {
                        loop.rejectionLog.log(reason: .clearanceLimited, client: clientIP, detail: "clearance revoked")
                        // Revoked on every event loop, not only on the one that saw the abuse.
                        loop.revokeEverywhere?(site.name, key)
                    }
                    if loop.strike(clientIP, reason: .clearanceLimited) { keepAlive = false }
                    respondLocally(.clearanceLimited, retryAfter: 2)
                    return false
                }
            } else if method == .get {
                // Hand out a clearance with the page: clients that keep cookies show it from now on,
                // which is how the detector tells them from a flood that keeps none.
                let clearance = Clearance.issue(level: .cookie, client: clientIP, now: unix, ttl: site.challenge.clearanceTTL.nanoseconds / 1_000_000_000)
                setCookie = defence.cookie(clearance, keys: &loop.keys, userAgent: agent, now: unix, secure: scheme == "https")
                loop.counters.clearancesIssued += 1
            }
            return true
        case .refuse:
            respondLocally(.challengeRequired, retryAfter: 5)
            return false
        case .challenge(let tier):
            defence.traffic.challenged += 1
            loop.counters.challengesIssued += 1
            if tier == .cookie, !noCookies {
                let clearance = Clearance.issue(level: .cookie, client: clientIP, now: unix, ttl: site.challenge.clearanceTTL.nanoseconds / 1_000_000_000)
                let cookie = defence.cookie(clearance, keys: &loop.keys, userAgent: agent, now: unix, secure: scheme == "https")
                loop.counters.clearancesIssued += 1
                let language = ChallengePage.language(acceptLanguage: head.headers.first(name: "accept-language"))
                // Back to the same, normalised target; never to another host (`//evil`, `/\evil`).
                let location = ChallengeRoutes.safeReturn(Substring(target))
                sendGenerated(
                    .found, body: ChallengePage.redirect(language: language, location: location),
                    headers: [("Location", location), ("Set-Cookie", cookie), ("X-Rampart-Challenge", "cookie")]
                )
                return false
            }
            if noCookies, loop.strike(clientIP, reason: .challengeRequired) { keepAlive = false }
            let accept = head.headers.first(name: "accept")
            guard method == .get, accept == nil || accept!.contains("text/html") || accept!.contains("*/*") else {
                respondLocally(.challengeRequired, retryAfter: 5)
                return false
            }
            sendProofOfWorkPage(head, returnTo: target, site: site, unix: unix)
            return false
        }
    }

    /// A wrong, replayed or expired answer on a gateway route: counted, struck, answered with 403
    /// (logged once, by the refusal).
    private func refuseAnswer(detail: String) {
        loop.counters.challengeFailures += 1
        if loop.strike(clientIP, reason: .challengeFailed) { keepAlive = false }
        respondLocally(.challengeFailed, detail: detail)
    }

    private func challengeFailed(detail: String) {
        loop.counters.challengeFailures += 1
        loop.rejectionLog.log(reason: .challengeFailed, client: clientIP, detail: detail)
        if loop.strike(clientIP, reason: .challengeFailed) { keepAlive = false }
    }

    private func sendProofOfWorkPage(_ head: HTTPRequestHead, returnTo: String, site: SiteConfig, unix: Int64) {
        let subnet = SubnetBinding.tag(clientIP)
        let challenge = Stamp(kind: .pow, issued: unix, parameter: UInt8(site.challenge.difficulty), subnet: subnet).encode(keys: &loop.keys)
        let ticket = Stamp(kind: .wait, issued: unix, parameter: UInt8(site.challenge.waitSeconds), subnet: subnet).encode(keys: &loop.keys)
        let waitURL = "\(ChallengeRoutes.wait)?r=\(PercentCoding.encode(returnTo))&t=\(ticket)"
        let page = ChallengePage.proofOfWork(
            language: ChallengePage.language(acceptLanguage: head.headers.first(name: "accept-language")),
            challenge: challenge, difficulty: site.challenge.difficulty, returnTo: returnTo,
            waitURL: waitURL, waitSeconds: site.challenge.waitSeconds, requestID: requestID
        )
        sendGenerated(.forbidden, body: page, headers: [("X-Rampart-Challenge", "pow")])
    }

    /// `/.rampart/pow` (a proof-of-work answer) and `/.rampart/wait` (a no-JavaScript ticket):
    /// checked, then a clearance cookie and a redirect back to where the client was going.
    private func answerChallengeRoute(_ head: HTTPRequestHead, target: String, site: SiteConfig, defence: SiteDefence) {
        let path = target.firstIndex(of: "?").map { target[..<$0] } ?? Substring(target)
        let unix = unixNow()
        let agent = head.headers.first(name: "user-agent") ?? ""
        let returnTo = ChallengeRoutes.safeReturn(ChallengeRoutes.parameter("r", in: Substring(target)))
        let level: Clearance.Level
        switch path {
        case Substring(ChallengeRoutes.pow):
            guard let c = ChallengeRoutes.parameter("c", in: Substring(target)), let a = ChallengeRoutes.parameter("a", in: Substring(target)) else {
                refuseAnswer(detail: "incomplete answer")
                return
            }
            switch Stamp.verify(c, kind: .pow, keys: &loop.keys, client: clientIP, now: unix, maxAge: 600) {
            case .success(let stamp):
                guard ProofOfWork.check(challenge: c, answer: a, difficulty: Int(stamp.parameter)) else {
                    refuseAnswer(detail: "wrong proof-of-work answer")
                    return
                }
                guard loop.ledger.redeem(stamp.nonce) else {
                    refuseAnswer(detail: "replayed proof-of-work answer")
                    return
                }
                level = .pow
            case .failure(let f):
                refuseAnswer(detail: "proof-of-work challenge: \(f.rawValue)")
                return
            }
        case Substring(ChallengeRoutes.wait):
            guard let t = ChallengeRoutes.parameter("t", in: Substring(target)) else {
                refuseAnswer(detail: "missing ticket")
                return
            }
            switch Stamp.verify(t, kind: .wait, keys: &loop.keys, client: clientIP, now: unix, maxAge: 900) {
            case .success(let stamp):
                let language = ChallengePage.language(acceptLanguage: head.headers.first(name: "accept-language"))
                let remaining = Int(stamp.issued + Int64(stamp.parameter) - unix)
                var early = remaining > 0
                if !early, case .limited = defence.waitBuckets.take(clientIP.defaultSubnet, now: Int64(loop.eventLoop.now.uptimeNanoseconds)) {
                    early = true  // too many tickets from this subnet right now: wait a little longer
                }
                if early {
                    sendGenerated(
                        .ok, body: ChallengePage.wait(language: language, waitURL: target, seconds: max(1, min(remaining, 60)), requestID: requestID),
                        headers: [("X-Rampart-Challenge", "wait")]
                    )
                    return
                }
                guard loop.ledger.redeem(stamp.nonce) else {
                    refuseAnswer(detail: "replayed ticket")
                    return
                }
                level = .wait
            case .failure(let f):
                refuseAnswer(detail: "ticket: \(f.rawValue)")
                return
            }
        default:
            respondLocally(.challengeFailed, detail: "unknown gateway route")
            return
        }
        let clearance = Clearance.issue(level: level, client: clientIP, now: unix, ttl: site.challenge.clearanceTTL.nanoseconds / 1_000_000_000)
        let cookie = defence.cookie(clearance, keys: &loop.keys, userAgent: agent, now: unix, secure: scheme == "https")
        loop.counters.clearancesIssued += 1
        sendGenerated(.found, body: "", headers: [("Location", returnTo), ("Set-Cookie", cookie)], decision: "cleared")
    }

    /// Answers the current request with a response the gateway made (challenge pages, redirects).
    private func sendGenerated(_ status: HTTPResponseStatus, body: String, headers extra: [(String, String)], decision: String = "challenged") {
        guard let context, phase != .closed else { return }
        responseStatus = Int(status.code)
        responseBytes = requestMethod == .HEAD ? 0 : body.utf8.count
        self.decision = decision
        decisionReason = nil
        endFill()
        pendingBody.removeAll()
        pendingBodyBytes = 0
        if !requestEnded && hasBody { keepAlive = false }
        var headers = HTTPHeaders()
        headers.reserveCapacity(extra.count + 5)
        headers.add(name: "Content-Type", value: "text/html; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "X-Request-Id", value: requestID)
        for (name, value) in extra { headers.add(name: name, value: value) }
        if !keepAlive || loop.draining {
            keepAlive = false
            headers.add(name: "Connection", value: "close")
        }
        responseStarted = true
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: clientVersion, status: status, headers: headers))), promise: nil)
        if requestMethod != .HEAD, !body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        }
        if !requestEnded { phase = .discarding }
        finishResponse(context: context, trailers: nil)
    }

    // MARK: - Finishing

    private func finishResponse(context: ChannelHandlerContext, trailers: HTTPHeaders?) {
        let micros = (loop.eventLoop.now - requestStart).nanoseconds / 1000
        loop.counters.observeLatency(micros: Int(micros))
        if let log = loop.accessLog {
            let site = siteIndex < loop.config.sites.count ? loop.config.sites[siteIndex].name : ""
            log.record(
                AccessLog.Entry(
                    site: site, client: clientIP, method: requestMethod, target: forwardHead?.uri ?? requestTarget, status: responseStatus,
                    bytes: responseBytes, durationMicros: micros, decision: decision,
                    reason: decisionReason, requestID: requestID, agent: requestHeaders.first(name: "user-agent"),
                    fingerprint: fingerprint
                )
            )
        }
        decisionReason = nil
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
            phase = requestEnded ? .idle : .discarding
            let now = loop.eventLoop.now
            if phase == .idle { timeouts.responseEnded(now: now) }
            forwardHead = nil
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
        switch reason {
        case .originUnavailable, .originTimeout, .originError, .originQueueFull:
            // A copy stored meanwhile (by a background refresh or another request) beats an error page.
            let now = loop.eventLoop.now
            if let key = cacheKey, !responseStarted, let (entry, fresh) = loop.caches[siteIndex].lookup(key, now: now) {
                cacheKey = nil
                loop.rejectionLog.log(reason: reason, client: clientIP, detail: "served a cached copy: \(detail ?? "")")
                serveFromCache(entry, label: fresh ? "HIT" : "STALE", now: now)
                return
            }
        default:
            break
        }
        loop.reject(reason, client: clientIP, detail: detail)
        switch reason {
        case .originQueueFull: loop.defence[siteIndex].traffic.shed += 1
        case .originUnavailable, .originTimeout, .originError: loop.defence[siteIndex].traffic.originErrors += 1
        default: break
        }
        if responseStarted {
            closeNow()
            return
        }
        pendingBody.removeAll()
        pendingBodyBytes = 0
        if reason.closesConnection || (!requestEnded && hasBody) { keepAlive = false }
        decision = "rejected"
        decisionReason = reason.rawValue
        let (h, body) = loop.pageTemplate(reason, json: ErrorPage.wantsJSON(requestHeaders)).render(
            requestID: requestID.isEmpty ? loop.nextRequestID() : requestID,
            close: !keepAlive,
            retryAfterSeconds: retryAfter,
            version: clientVersion,
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
            keepAlive = false
            if let upstream, let pool {
                self.upstream = nil
                self.pool = nil
                pool.release(upstream, reusable: false)
            }
            if responseStarted {
                loop.reject(reason, client: clientIP)
                closeNow()
            } else {
                respondLocally(reason)
            }
        default:
            // Header, idle and send timeouts: a client that is not talking or not reading gets no page.
            loop.reject(reason, client: clientIP)
            closeNow()
        }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
        timerAt = nil
    }

    /// The `Host` sent to the origin for a request that named none (HTTP/1.0): the site's first
    /// plain host name, else its first origin's address.
    static func fallbackHost(_ site: SiteConfig) -> String {
        if let name = site.hosts.first(where: { $0 != "*" && !$0.hasPrefix("*.") }) { return name }
        if let origin = site.origins.first { return "\(origin.address.host):\(origin.address.port)" }
        return "localhost"
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
