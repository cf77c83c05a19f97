/// Which shared events this node has applied, so each is applied once even when transactions
/// commit out of id order.
///
/// Event ids come from a sequence: an event with a smaller id can become visible after a larger one
/// (its transaction committed later), and a rolled-back insert leaves a hole forever. The cursor
/// keeps a `floor` (every id at or below it is applied, or was given up on) plus the ids applied
/// above it; a missing id is waited for `patience` seconds, then skipped. Fetches read everything
/// above the floor. Memory is bounded: past `capacity` tracked ids the floor jumps to the highest
/// applied id.
struct EventCursor: Sendable, Equatable {
    /// Every id at or below this is applied or given up on.
    private(set) var floor: Int64
    /// Ids applied above the floor.
    private var applied: Set<Int64> = []
    /// Missing ids above the floor, with when (seconds, any clock) they were first noticed.
    private var missing: [Int64: Double] = [:]
    /// Seconds a missing id is waited for.
    let patience: Double
    /// Most ids tracked above the floor.
    let capacity: Int

    init(floor: Int64 = 0, patience: Double = 5, capacity: Int = 10_000) {
        self.floor = floor
        self.patience = patience
        self.capacity = capacity
    }

    /// True when event `id` has not been applied yet.
    func isNew(_ id: Int64) -> Bool { id > floor && !applied.contains(id) }

    /// Starts again after `id` (a full resynchronisation read the state up to it).
    mutating func reset(to id: Int64) {
        floor = id
        applied = []
        missing = [:]
    }

    /// Records that `ids` were applied, at `now` (seconds), and advances the floor over what is
    /// contiguous or waited for long enough.
    mutating func record(_ ids: some Sequence<Int64>, now: Double) {
        for id in ids where id > floor {
            applied.insert(id)
            missing[id] = nil
        }
        guard let highest = applied.max() else { return }
        if highest - floor > Int64(capacity) {
            reset(to: highest)
            return
        }
        var id = floor + 1
        while id < highest {
            if !applied.contains(id), missing[id] == nil { missing[id] = now }
            id += 1
        }
        while true {
            let next = floor + 1
            if applied.remove(next) != nil {
                floor = next
            } else if let since = missing[next], now - since >= patience {
                missing[next] = nil
                floor = next
            } else {
                break
            }
        }
    }

    /// Ids above the floor that are still awaited.
    var awaited: Int { missing.count }
}
