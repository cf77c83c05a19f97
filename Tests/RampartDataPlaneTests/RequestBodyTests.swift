import NIOCore
import NIOEmbedded
import Testing

@testable import RampartCore
@testable import RampartDataPlane

/// The request body through the exchange's transitions (``ExchangeState/requestBody(_:overLimit:)``,
/// ``ExchangeState/requestEnd(_:)``): collected while no origin connection is there, streamed past
/// the kept bound, refused past the site's bound, and kept across a failed origin.
@Suite struct RequestBodyTests {
    static func post(_ path: String, chunks: [String]) -> String {
        var text = "POST \(path) HTTP/1.1\r\nHost: example.org\r\nTransfer-Encoding: chunked\r\n\r\n"
        for chunk in chunks { text += String(chunk.utf8.count, radix: 16) + "\r\n" + chunk + "\r\n" }
        return text
    }

    /// A small body arriving in parts waits for the origin connection (here busy with another
    /// request) and goes out whole, in order, right after the head.
    @Test func aBodyCollectedWhileTheOriginIsBusyGoesOutAfterItsHead() throws {
        let bench = try ProxyBench { config in
            config.sites[0].origins[0].maxConnections = 1
            config.sites[0].cache.enabled = false
        }
        let first = try bench.client("198.51.100.1")
        try bench.send(first, ProxyBench.get("/slow"))
        let poster = try bench.client("198.51.100.2")
        try bench.send(poster, "POST /form HTTP/1.1\r\nHost: example.org\r\nContent-Length: 6\r\n\r\nabc")
        try bench.send(poster, "def")
        #expect(try bench.origin.forwarded().hasPrefix("GET /slow "))
        #expect(try bench.received(poster).isEmpty)

        try bench.origin.answer(0, ProxyBench.page)
        #expect(try bench.received(first).hasSuffix("hello"))
        let forwarded = try bench.origin.forwarded()
        #expect(forwarded.hasPrefix("POST /form HTTP/1.1\r\n"))
        #expect(forwarded.hasSuffix("\r\n\r\nabcdef"))
        try bench.origin.answer(0, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        #expect(try bench.received(poster).hasPrefix("HTTP/1.1 201 Created\r\n"))
    }

    /// A slow POST announcing a large body (Content-Length past the kept bound, sent a few bytes at a
    /// time) takes no origin connection while it trickles; once its first 64 KiB are in it streams,
    /// the collected part first.
    @Test func aLargeDeclaredBodyTakesNoOriginConnectionUntilItsFirstPartIsIn() throws {
        let bench = try ProxyBench { $0.sites[0].cache.enabled = false }
        let client = try bench.client()
        try bench.send(client, "POST /login HTTP/1.1\r\nHost: example.org\r\nContent-Length: 100000\r\n\r\n")
        for _ in 0..<5 {
            bench.eventLoop.advanceTime(by: .milliseconds(500))
            try bench.send(client, "a")
        }
        #expect(bench.origin.connections.isEmpty, "a trickling upload holds an origin connection")
        let rest = String(repeating: "b", count: 100_000 - 5)
        try bench.send(client, String(rest.prefix(70_000)))
        #expect(bench.origin.connections.count == 1)
        let soFar = try bench.origin.forwarded()
        #expect(soFar.hasPrefix("POST /login HTTP/1.1\r\n") && soFar.hasSuffix("aaaaa" + String(rest.prefix(70_000))))
        try bench.send(client, String(rest.dropFirst(70_000)))
        #expect(try bench.origin.forwarded() == String(rest.dropFirst(70_000)))
        try bench.origin.answer(0, "HTTP/1.1 204 No Content\r\n\r\n")
        #expect(try bench.received(client).hasPrefix("HTTP/1.1 204 No Content\r\n"))
    }

    /// A body of unknown length that outgrows what the gateway keeps is streamed: the origin has the
    /// head and the first part before the client has finished sending.
    @Test func aBodyLargerThanTheKeptBoundIsStreamedBeforeItEnds() throws {
        let bench = try ProxyBench { $0.sites[0].cache.enabled = false }
        let client = try bench.client()
        let part = String(repeating: "x", count: 40 * 1024)
        try bench.send(client, Self.post("/upload", chunks: [part]))
        #expect(bench.origin.connections.isEmpty)
        try bench.send(client, String(part.utf8.count, radix: 16) + "\r\n" + part + "\r\n")
        #expect(bench.origin.connections.count == 1)
        let soFar = try bench.origin.forwarded()
        #expect(soFar.hasPrefix("POST /upload HTTP/1.1\r\n"))
        #expect(soFar.utf8.count > 2 * part.utf8.count)
        try bench.send(client, "0\r\n\r\n")
        #expect(try bench.origin.forwarded().hasSuffix("0\r\n\r\n"))
        try bench.origin.answer(0, "HTTP/1.1 204 No Content\r\n\r\n")
        #expect(try bench.received(client).hasPrefix("HTTP/1.1 204 No Content\r\n"))
    }

    /// A chunked body past the site's bound is refused with 413 and the connection closed, whether
    /// it was still being collected or already streaming to the origin (whose connection is dropped).
    @Test func aBodyPastTheSiteBoundGets413AndTheConnectionCloses() throws {
        for streaming in [false, true] {
            let bench = try ProxyBench { config in
                config.sites[0].cache.enabled = false
                config.sites[0].limits.maxBodyBytes = streaming ? 100 * 1024 : 10
            }
            let client = try bench.client()
            let part = String(repeating: "y", count: streaming ? 70 * 1024 : 20)
            try bench.send(client, Self.post("/upload", chunks: [part]))
            if streaming {
                #expect(bench.origin.connections.count == 1, "streaming")
                try bench.send(client, String(part.utf8.count, radix: 16) + "\r\n" + part + "\r\n")
            }
            let reply = try bench.received(client)
            #expect(reply.hasPrefix("HTTP/1.1 413 "), "streaming: \(streaming)")
            #expect(reply.contains("Connection: close\r\n"), "streaming: \(streaming)")
            #expect(!client.isActive, "streaming: \(streaming)")
            if streaming { #expect(!bench.origin.connections[0].isActive) }
        }
    }

    /// The first origin refuses the connection: the collected body goes to the second one, whole.
    @Test func aCollectedBodyIsKeptForTheNextOriginWhenTheFirstFails() throws {
        let bench = try ProxyBench { config in
            config.sites[0].cache.enabled = false
            config.sites[0].origins = [
                OriginConfig(address: HostPort(host: "127.0.0.1", port: 1)), OriginConfig(address: HostPort(host: "127.0.0.1", port: 2)),
            ]
        }
        bench.origin.refusedPorts = [1]
        let client = try bench.client()
        // Round robin starts at the first origin, the dead one.
        try bench.send(client, "POST /form HTTP/1.1\r\nHost: example.org\r\nContent-Length: 5\r\n\r\nhe")
        try bench.send(client, "llo")
        #expect(bench.origin.asked == [1, 2])
        let forwarded = try bench.origin.forwarded()
        #expect(forwarded.hasPrefix("POST /form HTTP/1.1\r\n"))
        #expect(forwarded.hasSuffix("\r\n\r\nhello"))
        try bench.origin.answer(0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        #expect(try bench.received(client).hasSuffix("\r\n\r\nok"))
    }
}
