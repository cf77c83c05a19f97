import NIOCore
import Testing

@testable import RampartCore
@testable import RampartDataPlane

/// The origin pool under its learned concurrency limit, on the whole proxy path (embedded origin
/// connections, virtual time): past the limit requests wait in the gateway's queue, priority
/// first, even with the connection cap far away; 503s from the origin cut the limit.
@Suite struct AdaptiveOriginLimitTests {
    static let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    static let busy = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"

    @Test func pastTheLearnedLimitRequestsWaitInTheGatewaysQueueKeyHoldersFirst() throws {
        let bench = try ProxyBench { config in
            config.sites[0].cache.enabled = false
            config.sites[0].apiKeys = ["tax-software-key-0001"]
        }
        let pool = bench.loop.sites[0].pools[0]
        // 128 connections allowed, but nothing is known of the origin yet: 4 at once.
        #expect(pool.maxConnections == 128 && pool.concurrencyLimit == 4)
        let first = try (0..<4).map { try bench.client("198.51.100.\(10 + $0)") }
        for (i, c) in first.enumerated() { try bench.send(c, ProxyBench.get("/page\(i)")) }
        #expect(bench.origin.connections.count == 4)
        let stranger = try bench.client("203.0.113.7")
        try bench.send(stranger, ProxyBench.get("/stranger"))
        let keyHolder = try bench.client("203.0.113.8")
        try bench.send(keyHolder, "GET /filing HTTP/1.1\r\nHost: example.org\r\nAuthorization: Bearer tax-software-key-0001\r\n\r\n")
        #expect(bench.origin.connections.count == 4)
        #expect(pool.queued == 2)

        // One answer frees one place: the key holder goes first, on the same connection.
        for i in 0..<4 { _ = try bench.origin.forwarded(i) }
        bench.eventLoop.advanceTime(by: .milliseconds(10))
        try bench.origin.answer(0, Self.ok)
        #expect(try bench.received(first[0]).hasPrefix("HTTP/1.1 200 OK"))
        #expect(try bench.origin.forwarded(0).hasPrefix("GET /filing "))
        #expect(pool.queued == 1)
        try bench.origin.answer(1, Self.ok)
        #expect(try bench.origin.forwarded(1).hasPrefix("GET /stranger "))
        #expect(bench.origin.connections.count == 4)
    }

    @Test func overloadedAnswersCutTheLimitToItsFloorAndGoodOnesGrowItBack() throws {
        let bench = try ProxyBench { config in
            config.sites[0].cache.enabled = false
            config.sites[0].origins[0].minConcurrency = 1
        }
        let pool = bench.loop.sites[0].pools[0]
        let client = try bench.client("198.51.100.10")
        func exchange(_ answer: String) throws {
            try bench.send(client, ProxyBench.get("/x"))
            _ = try bench.origin.forwarded(0)
            bench.eventLoop.advanceTime(by: .milliseconds(300))
            try bench.origin.answer(0, answer)
            _ = try bench.received(client)
        }
        for _ in 0..<10 { try exchange(Self.busy) }
        #expect(pool.concurrencyLimit == 1)
        // Answered well, it grows again, but only while it is in use: one client at a time
        // earns one more place, not the connection cap.
        for _ in 0..<10 { try exchange(Self.ok) }
        #expect(pool.concurrencyLimit == 2)
        // Shown per site, summed over loops, with the second's traffic.
        #expect(bench.loop.takeTraffic().first?.1.originLimit == pool.concurrencyLimit)
    }

    @Test func withoutAdaptiveConcurrencyOnlyTheConnectionCapHoldsRequests() throws {
        let bench = try ProxyBench { config in
            config.sites[0].cache.enabled = false
            config.sites[0].origins[0].adaptiveConcurrency = false
            config.sites[0].origins[0].maxConnections = 6
        }
        let clients = try (0..<7).map { try bench.client("198.51.100.\(10 + $0)") }
        for (i, c) in clients.enumerated() { try bench.send(c, ProxyBench.get("/page\(i)")) }
        #expect(bench.origin.connections.count == 6)
        #expect(bench.loop.sites[0].pools[0].queued == 1)
        #expect(bench.loop.sites[0].pools[0].concurrencyLimit == 6)
    }
}

/// The three places in the origin queue: people known by name, then cleared and known-good
/// clients, then everyone else.
@Suite struct OriginQueueOrderTests {
    @Test func membersAndKeyHoldersGoBeforeClearedAndKnownGoodClientsWhoGoBeforeStrangers() throws {
        let bench = try ProxyBench { config in
            config.sites[0].cache.enabled = false
            config.sites[0].apiKeys = ["tax-software-key-0001"]
            config.sites[0].origins[0].maxConnections = 1
            config.sites[0].origins[0].adaptiveConcurrency = false
            config.knownGood.successes = 1
            config.knownGood.minimumAge = .zero
        }
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        let regular = try bench.client("198.51.100.1")
        try bench.send(regular, ProxyBench.get("/earn"))
        _ = try bench.origin.forwarded()
        bench.eventLoop.advanceTime(by: .seconds(1))
        try bench.origin.answer(0, ok)
        _ = try bench.received(regular)
        let busy = try bench.client("198.51.100.2")
        try bench.send(busy, ProxyBench.get("/busy"))
        _ = try bench.origin.forwarded()
        try bench.send(try bench.client("203.0.113.9"), ProxyBench.get("/stranger"))
        try bench.send(regular, ProxyBench.get("/known-good"))
        try bench.send(try bench.client("203.0.113.10"), "GET /key HTTP/1.1\r\nHost: example.org\r\nX-API-Key: tax-software-key-0001\r\n\r\n")
        #expect(bench.loop.sites[0].pools[0].queued == 3)
        var order: [String] = []
        for _ in 0..<3 {
            try bench.origin.answer(0, ok)
            let forwarded = try bench.origin.forwarded()
            order.append(String(forwarded.split(separator: " ")[1]))
        }
        #expect(order == ["/key", "/known-good", "/stranger"])
    }
}

/// Logins and unknown API keys waiting in the origin queue when their site goes under attack are
/// decided again: a spray queued by the thousand must not drain into the origin afterwards.
@Suite struct QueuedCredentialAttemptTests {
    @Test func credentialAttemptsFromStrangersWaitingWhenTheSiteGoesUnderAttackAreRefusedNotForwarded() throws {
        let bench = try ProxyBench { config in
            config.sites[0].cache.enabled = false
            config.sites[0].origins[0].maxConnections = 1
            config.sites[0].origins[0].adaptiveConcurrency = false
        }
        let login = "POST /login HTTP/1.1\r\nHost: example.org\r\nContent-Length: 9\r\n\r\nuser=mall"
        // Elevated: logins and API calls without a clearance still pass the challenge stage.
        bench.loop.setMode(site: bench.loop.sites[0].name, mode: .elevated, tier: .cookie)
        let first = try bench.client("198.51.100.1")
        try bench.send(first, ProxyBench.get("/busy"))
        _ = try bench.origin.forwarded()
        let unknownKey = "GET /api/v1/returns HTTP/1.1\r\nHost: example.org\r\nAuthorization: Bearer sprayed-\(UInt32.random(in: 0...UInt32.max))\r\n\r\n"
        let sprayers = try (0..<4).map { try bench.client("203.0.113.\(20 + $0)") }
        for (i, c) in sprayers.enumerated() { try bench.send(c, i % 2 == 0 ? login : unknownKey) }
        let pool = bench.loop.sites[0].pools[0]
        #expect(pool.queued == 4)

        bench.loop.setMode(site: bench.loop.sites[0].name, mode: .underAttack, tier: .cookie)
        #expect(pool.queued == 0)
        for c in sprayers {
            let answer = try bench.received(c)
            #expect(answer.hasPrefix("HTTP/1.1 429"))
        }
        // The origin sees nothing after the request it already had, even once it is free.
        try bench.origin.answer(0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        _ = try bench.received(first)
        #expect(bench.origin.connections.count == 1)
        #expect(try bench.origin.forwarded(0) == "")
    }
}

