import Foundation
import RampartState
import ServiceLifecycle

/// The state database's writer as a service. Bans, incidents and mode overrides are written on
/// the store's own queue while the gateway runs; this service stops last, once the gateway has
/// drained and detection has closed its incidents, and waits until every queued write is on disk.
struct StateWriterService: Service, CustomStringConvertible {
    /// nil when the database could not be opened (the gateway runs on without persistence).
    let store: StateStore?

    var description: String { "state-writer" }

    func run() async throws {
        try? await gracefulShutdown()
        guard let store else { return }
        // `flush` blocks until the queue is empty: off the cooperative pool.
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                store.flush()
                done.resume()
            }
        }
    }
}
