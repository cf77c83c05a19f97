import NIOConcurrencyHelpers
import RampartCore

/// The proof-of-work answers and no-JavaScript tickets already redeemed, one ledger for the whole
/// gateway: a stamp redeemed on one event loop is refused on every other one. Only the answer
/// routes (`/.rampart/pow`, `/.rampart/wait`) touch it, a few times per visitor, so a lock here
/// costs the proxy path nothing. Fixed memory: the oldest entries give way first, and a stamp
/// lives at most 15 minutes, so with 262,144 slots a replay needs more than 290 redemptions a
/// second, sustained, from the stamp's own subnet to age its nonce out.
final class ChallengeLedger: Sendable {
    /// Slots in the ledger.
    static let capacity = 262_144
    private let used = NIOLockedValueBox(RecentNonces(capacity: ChallengeLedger.capacity))

    init() {}

    /// Records `nonce`; false when it was redeemed before (on any loop).
    func redeem(_ nonce: UInt64) -> Bool {
        used.withLockedValue { $0.insert(nonce) }
    }
}
