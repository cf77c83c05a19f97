import NIOCore
import NIOHTTP1

/// Clients the origin has vouched for: addresses it answered with success several times, the first
/// of them a while ago, without limit violations in between. They go ahead of unknown clients in the origin queue, so that when the
/// origin is saturated the people who were already using the site keep being served.
///
/// Learned passively and cheaply, in a fixed-size set-associative table like the rate limiter's (a
/// flood of new addresses evicts other new addresses, not the established ones); entries expire.
/// Time is passed in.
public struct KnownGoodTable: Sendable {
    struct Entry: Sendable {
        var successes: UInt16 = 0
        var firstSeen: Int64 = 0
        var lastSeen: Int64 = 0
    }

    private var table: SetAssociativeTable<Entry>
    /// Successful answers after which a client counts as known-good.
    public let threshold: UInt16
    /// How long a client stays known-good without a new success, nanoseconds.
    public let lifetime: Int64
    /// How long before its first success a client must have been around, nanoseconds: sources that
    /// appear with an attack do not jump the queue within it.
    public let minimumAge: Int64

    /// A table of at least `capacity` slots.
    public init(
        capacity: Int = 65_536,
        threshold: Int = 3,
        minimumAge: TimeAmount = .seconds(30),
        lifetime: TimeAmount = .hours(1),
        seed: UInt64 = UInt64.random(in: 0...UInt64.max)
    ) {
        self.minimumAge = minimumAge.nanoseconds
        table = SetAssociativeTable(capacity: capacity, seed: seed, empty: Entry())
        self.threshold = UInt16(max(1, min(threshold, 1000)))
        self.lifetime = lifetime.nanoseconds
    }

    /// True when `client` has earned priority and not lost it.
    public func contains(_ client: IPAddress, now: Int64) -> Bool {
        guard let i = table.find(client) else { return false }
        let e = table[i]
        return e.successes >= threshold && now - e.lastSeen < lifetime && now - e.firstSeen >= minimumAge
    }

    /// The origin answered `client` with success.
    public mutating func recordSuccess(_ client: IPAddress, now: Int64) {
        let lifetime = self.lifetime
        // Evicts expired entries first, then those with the fewest successes, then the oldest.
        let (i, inserted) = table.slot(
            for: client,
            rank: { e in now - e.lastSeen >= lifetime ? Int64.min : Int64(e.successes) << 40 | (e.lastSeen >> 24) },
            fresh: { Entry(successes: 0, firstSeen: now, lastSeen: now) }
        )
        if !inserted, now - table[i].lastSeen >= lifetime {
            table[i].successes = 0
            table[i].firstSeen = now
        }
        table[i].successes = min(table[i].successes &+ 1, 1000)
        table[i].lastSeen = now
    }

    /// `client` tripped a limit: it starts over.
    public mutating func forget(_ client: IPAddress) {
        table.remove(client)
    }
}

/// The credential a request carries that can earn priority: the value of a configured session
/// cookie, or (when enabled) a bearer token that is not a configured API key. Only its hash is
/// kept; the value never leaves the request.
public enum CredentialKey {
    /// The credential's fixed-size key, or nil when the request carries none.
    public static func find(in headers: HTTPHeaders, cookies: [String], bearer: Bool, apiKey: PresentedAPIKey?) -> IPAddress? {
        if !cookies.isEmpty {
            for header in headers[canonicalForm: "cookie"] {
                for pair in header.split(separator: ";") {
                    let kv = pair.trimmingASCIISpaces().split(separator: "=", maxSplits: 1)
                    if kv.count == 2, !kv[1].isEmpty, cookies.contains(where: { kv[0] == $0 }) {
                        return hash("cookie", String(kv[0]), String(kv[1]))
                    }
                }
            }
        }
        if bearer, let key = apiKey, !key.configured, headers.first(name: "authorization") != nil {
            return hash("bearer", "", key.value)
        }
        return nil
    }

    static func hash(_ kind: String, _ name: String, _ value: String) -> IPAddress {
        var a = Hasher()
        a.combine(kind)
        a.combine(name)
        a.combine(value)
        var b = Hasher()
        b.combine(value)
        b.combine(name)
        b.combine(kind)
        return IPAddress(high: UInt64(bitPattern: Int64(a.finalize())), low: UInt64(bitPattern: Int64(b.finalize())))
    }
}
