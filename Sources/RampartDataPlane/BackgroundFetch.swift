import NIOCore
import NIOHTTP1
import RampartCore

/// Refreshes a stale cache entry from an origin with no client waiting for it
/// (stale-while-revalidate): everyone is served the stale copy at once, and this fetch replaces it
/// when the origin answers. Lives on one event loop; the loop context keeps it until it ends.
final class BackgroundFetch: UpstreamDelegate {
    private let loop: LoopContext
    private let site: SiteRuntime
    private let key: String
    private let head: HTTPRequestHead
    private let pool: OriginPool
    private var connection: UpstreamConnection?
    private var fill: CacheFill?
    private var keepAlive = false
    private var done = false

    init(loop: LoopContext, site: SiteRuntime, key: String, head: HTTPRequestHead, pool: OriginPool) {
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
        conn.handler.awaitResponse(timeout: site.config.limits.originResponseTimeout)
    }

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        switch part {
        case .head(let h):
            var prepared = h
            ForwardingHeaders.prepareResponse(&prepared.headers)
            keepAlive = h.isKeepAlive
            fill = CacheFill(key: key, response: prepared, method: .GET, config: site.config.cache, allocator: ByteBufferAllocator())
        case .body(let b):
            if fill?.append(b) == false { fill = nil }
        case .end:
            fill?.store(in: &site.cache, now: loop.eventLoop.now)
            if let conn = connection {
                connection = nil
                pool.release(conn, reusable: keepAlive)
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
