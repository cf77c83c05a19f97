import NIOCore
import NIOHTTP1
import RampartCore

/// Response phase: an origin's answer captured for the micro-cache, shared by a client's fetch and
/// the background refresh of a stale copy. It starts only for a response the site's cache policy
/// allows, gives up when the body outgrows the largest object, and stores the whole response with
/// its exact length at the end.
struct CacheFill {
    let key: String
    private var head: HTTPResponseHead
    private let ttl: TimeAmount
    private let config: CacheConfig
    private var body: ByteBuffer

    /// A fill of `key` with `response` (already prepared for clients); nil when it may not be cached.
    init?(key: String, response: HTTPResponseHead, method: HTTPMethod, config: CacheConfig, allocator: ByteBufferAllocator) {
        guard let ttl = CachePolicy.ttl(status: response.status, headers: response.headers, method: method, config: config) else { return nil }
        self.key = key
        self.head = response
        self.ttl = ttl
        self.config = config
        self.body = allocator.buffer(capacity: 0)
    }

    /// Adds a part of the body; false when the object grew past `max_object_bytes` (give up).
    mutating func append(_ part: ByteBuffer) -> Bool {
        guard body.readableBytes + part.readableBytes <= config.maxObjectBytes else { return false }
        body.writeImmutableBuffer(part)
        return true
    }

    /// Stores the complete response in `cache`, fresh for its TTL and stale for `stale_for` after.
    func store(in cache: inout MicroCacheStore, now: NIODeadline) {
        var head = self.head
        head.headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
        cache.store(
            key,
            CachedResponse(
                status: head.status, headers: head.headers, body: body, storedAt: now,
                freshUntil: now + ttl, staleUntil: now + ttl + config.staleFor
            )
        )
    }
}
