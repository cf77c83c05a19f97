import Foundation
import GRDB
import RampartCore

/// Writes the database refused, waiting to be tried again: one per row key (`ban 192.0.2.1`,
/// `incident 7`, `mode www`), the latest write of a row replacing an older one, tried in the order
/// they first failed. At most `capacity` rows wait; more are counted as dropped (the gateway's
/// in-memory state still holds them, only their persistence is lost). A plain value: the store
/// keeps it on its serial queue.
struct PendingWrites<Work> {
    let capacity: Int
    private var entries: [String: (sequence: Int, work: Work)] = [:]
    /// Keys in the order they failed; entries whose sequence no longer matches are stale.
    private var order: [(key: String, sequence: Int)] = []
    private var head = 0
    private var nextSequence = 0
    /// True from a failed write until every waiting write is saved.
    private(set) var failing = false
    private(set) var failures = 0
    private(set) var dropped = 0
    private(set) var lastError: String?

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Rows waiting.
    var count: Int { entries.count }

    /// A newer write of `key` is about to be made: the waiting one is obsolete.
    mutating func supersede(_ key: String) {
        entries[key] = nil
    }

    /// `work` for `key` failed with `error`: keep it (in its old place when it was waiting already).
    mutating func failed(key: String, work: Work, error: String) {
        failures += 1
        failing = true
        lastError = error
        if let existing = entries[key] {
            entries[key] = (existing.sequence, work)
            return
        }
        guard entries.count < capacity else {
            dropped += 1
            return
        }
        entries[key] = (nextSequence, work)
        order.append((key, nextSequence))
        nextSequence += 1
        // Rows rewritten while failing (an open incident, every few seconds) leave stale places
        // behind: rebuild the order from the live entries before it outgrows them.
        if order.count - head > 2 * capacity + 1024 {
            order = entries.map { (key: $0.key, sequence: $0.value.sequence) }.sorted { $0.sequence < $1.sequence }
            head = 0
        }
    }

    /// The write that has waited longest, left in place until ``succeeded(_:)``.
    mutating func next() -> (key: String, work: Work)? {
        while head < order.count {
            let (key, sequence) = order[head]
            if let entry = entries[key], entry.sequence == sequence { return (key, entry.work) }
            head += 1
        }
        order.removeAll(keepingCapacity: order.count < 4 * capacity)
        head = 0
        return nil
    }

    /// `key` is saved.
    mutating func succeeded(_ key: String) {
        entries[key] = nil
        if head > 1024, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }

    /// Nothing waits any more: the database takes writes again.
    mutating func recovered() {
        failing = !entries.isEmpty
    }

    var health: StoreHealth {
        StoreHealth(writable: !failing, failedWrites: failures, pendingWrites: entries.count, droppedWrites: dropped, lastError: lastError)
    }
}

/// The store's pending writes (touched on its queue only) and the last published health (read
/// from any thread under a lock).
final class PendingWriteBox: @unchecked Sendable {
    typealias Work = @Sendable (Database) throws -> Void
    /// Confined to the store's serial queue.
    var value: PendingWrites<Work>
    private let lock = NSLock()
    private var health = StoreHealth()

    init(_ value: PendingWrites<Work>) {
        self.value = value
    }

    /// Makes the current figures visible to ``published``; called on the store's queue.
    func publish() {
        let now = value.health
        lock.lock()
        health = now
        lock.unlock()
    }

    var published: StoreHealth {
        lock.lock()
        defer { lock.unlock() }
        return health
    }
}
