import NIOCore
import NIOHTTP1
import RampartCore

/// Refreshes a stale cache entry from an origin with no client waiting for it
/// (stale-while-revalidate): everyone is served the stale copy at once, and this fetch replaces it
/// when the origin answers. Lives on one event loop; the loop context keeps it until it ends.
final class BackgroundFetch: UpstreamDelegate {
    private let loop: LoopContext
    private let site: Int
    private let key: String
    private let head: HTTPRequestHead
    private let pool: OriginPool
    private var connection: UpstreamConnection?
    private var response: HTTPResponseHead?
    private var ttl: TimeAmount?
    private var body = ByteBuffer()
    private var done = false

    init(loop: LoopContext, site: Int, key: String, head: HTTPRequestHead, pool: OriginPool) {
        self.loop = loop
        self.site = site
        self.key = key
        var h = head
        h.method = .GET
        self.head = h
        self.pool = pool
    }

    /// Takes an origin connection (ahead of unknown clients) and sends the request.
    func start(now: NIODeadline) {
        loop.backgroundFetches[ObjectIdentifier(self)] = self
        switch pool.acquire(now: now, priority: true, { [self] result in
            switch result {
            case .success(let conn): self.send(conn)
            case .failure:
                self.pool.abandon()
                self.finish()
            }
        }) {
        case .ready(let conn): send(conn)
        case .pending: break
        case .unavailable: finish()
        }
    }

    private func send(_ conn: UpstreamConnection) {
        guard !done else {
            pool.release(conn, reusable: true)
            return
        }
        connection = conn
        conn.requestsSent += 1
        conn.handler.delegate = self
        conn.handler.write(.head(head))
        conn.handler.write(.end(nil))
        conn.handler.flush()
        conn.handler.awaitResponse(timeout: loop.config.sites[site].limits.originResponseTimeout)
    }

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        switch part {
        case .head(let h):
            var prepared = h
            ForwardingHeaders.prepareResponse(&prepared.headers)
            response = prepared
            ttl = CachePolicy.ttl(status: h.status, headers: prepared.headers, method: .GET, config: loop.config.sites[site].cache)
        case .body(var b):
            if ttl != nil {
                if body.readableBytes + b.readableBytes > loop.config.sites[site].cache.maxObjectBytes {
                    ttl = nil
                } else {
                    body.writeBuffer(&b)
                }
            }
        case .end:
            if let ttl, var h = response {
                let now = loop.eventLoop.now
                h.headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
                loop.caches[site].store(
                    key,
                    CachedResponse(
                        status: h.status, headers: h.headers, body: body, storedAt: now, freshUntil: now + ttl,
                        staleUntil: now + ttl + loop.config.sites[site].cache.staleFor
                    )
                )
            }
            if let conn = connection {
                connection = nil
                pool.release(conn, reusable: response?.isKeepAlive ?? false)
            }
            finish()
        }
    }

    func upstreamReadComplete() {}
    func upstreamWritabilityChanged(isWritable: Bool) {}

    func upstreamFailed(_ error: any Error) {
        if let conn = connection {
            connection = nil
            pool.release(conn, reusable: false)
        }
        finish()
    }

    private func finish() {
        guard !done else { return }
        done = true
        loop.finishFill(key)
        loop.backgroundFetches.removeValue(forKey: ObjectIdentifier(self))
    }
}

@available(*, unavailable)
extension BackgroundFetch: Sendable {}
