import NIOCore
import NIOHTTP1
import Testing

@testable import RampartCore

@Suite struct CachePolicyTests {
    let config = CacheConfig()

    func key(_ target: String, _ headers: [(String, String)] = [], method: HTTPMethod = .GET) -> String? {
        CachePolicy.key(method: method, target: target, host: "Example.org", headers: HTTPHeaders(headers), config: config)
    }

    @Test func keysDropTheQueryOnlyWhereConfigured() {
        #expect(key("/?r=123") == "example.org/|")
        #expect(key("/news?page=2") == "example.org/news?page=2|")
        #expect(key("/", [("Accept-Encoding", "gzip, deflate, br")]) == "example.org/|bgd")
        var c = CacheConfig()
        c.dropQuery = ["/news/*"]
        #expect(CachePolicy.key(method: .GET, target: "/news/a?utm=1", host: "h", headers: [:], config: c) == "h/news/a|")
        #expect(CachePolicy.key(method: .GET, target: "/?x", host: "h", headers: [:], config: c) == "h/?x|")
        // Unknown parameters are dropped, content-selecting ones kept.
        c.keepParams = ["page", "lang"]
        #expect(CachePolicy.key(method: .GET, target: "/news/a?utm=1&page=2&r=9&lang=lt", host: "h", headers: [:], config: c) == "h/news/a?page=2&lang=lt|")
        #expect(CachePolicy.key(method: .GET, target: "/news/a?r=9", host: "h", headers: [:], config: c) == "h/news/a|")
    }

    @Test func personalRequestsBypassTheCache() {
        #expect(key("/", method: .POST) == nil)
        #expect(key("/", [("Cookie", "session=1")]) == nil)
        #expect(key("/", [("Authorization", "Bearer x")]) == nil)
        var c = CacheConfig()
        c.withCookies = true
        #expect(CachePolicy.key(method: .GET, target: "/", host: "h", headers: ["Cookie": "a=b"], config: c) == "h/|")
        c.enabled = false
        #expect(CachePolicy.key(method: .GET, target: "/", host: "h", headers: [:], config: c) == nil)
    }

    func ttl(_ headers: [(String, String)], status: HTTPResponseStatus = .ok) -> TimeAmount? {
        CachePolicy.ttl(status: status, headers: HTTPHeaders(headers), method: .GET, config: config)
    }

    @Test func storableResponses() {
        #expect(ttl([("Content-Type", "text/html; charset=utf-8")]) == .seconds(1))
        #expect(ttl([("Content-Type", "application/json")]) == nil)
        #expect(ttl([("Content-Type", "application/json"), ("Cache-Control", "public, max-age=30")]) == .seconds(30))
        #expect(ttl([("Cache-Control", "max-age=30, s-maxage=5")]) == .seconds(5))
        #expect(ttl([("Content-Type", "text/html"), ("Set-Cookie", "a=b")]) == nil)
        #expect(ttl([("Content-Type", "text/html"), ("Cache-Control", "no-store")]) == nil)
        #expect(ttl([("Content-Type", "text/html"), ("Cache-Control", "private, max-age=60")]) == nil)
        #expect(ttl([("Content-Type", "text/html"), ("Vary", "Cookie")]) == nil)
        #expect(ttl([("Content-Type", "text/html"), ("Vary", "Accept-Encoding")]) == .seconds(1))
        #expect(ttl([("Content-Type", "text/html")], status: .internalServerError) == nil)
        #expect(ttl([("Cache-Control", "max-age=0")]) == nil)
    }

    @Test func storeStaysWithinItsBudget() {
        var store = MicroCacheStore(maxBytes: 100_000)
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
        for i in 0..<200 {
            let body = ByteBuffer(repeating: 0x61, count: 1000)
            store.store("k\(i)", CachedResponse(status: .ok, headers: [:], body: body, storedAt: t0, freshUntil: t0 + .seconds(1), staleUntil: t0 + .seconds(61)))
        }
        #expect(store.usedBytes <= 100_000)
        #expect(store.count < 200 && store.count > 50)
        #expect(store.lookup("k199", now: t0)?.fresh == true)
        #expect(store.lookup("k199", now: t0 + .seconds(2))?.fresh == false)
        #expect(store.lookup("k199", now: t0 + .seconds(61)) == nil)
    }
}
