import NIOCore

/// Two FIFO queues, one served before the other but not to its exclusion: while both hold
/// entries, one pick in `regularShare` goes to the regular queue. Known-good clients go first in
/// an origin's queue, and a steady stream of them can still not starve a newcomer (a person who
/// just passed a challenge, or whose address is new) until it times out.
public struct TwoClassQueue<Element> {
    /// Served first.
    public var priority = CircularBuffer<Element>()
    /// Served when `priority` is empty, and once in every `regularShare` picks when it is not.
    public var regular = CircularBuffer<Element>()
    /// One pick in this many goes to `regular` while both wait (at least 2).
    public let regularShare: Int
    private var prioritySinceRegular = 0

    public init(regularShare: Int = 8) {
        self.regularShare = max(2, regularShare)
    }

    /// Entries waiting in both queues.
    public var count: Int { priority.count + regular.count }

    /// The next entry to serve, nil when both are empty.
    public mutating func popNext() -> Element? {
        if !regular.isEmpty, priority.isEmpty || prioritySinceRegular >= regularShare - 1 {
            prioritySinceRegular = 0
            return regular.popFirst()
        }
        guard let next = priority.popFirst() else { return nil }
        prioritySinceRegular += 1
        return next
    }
}
