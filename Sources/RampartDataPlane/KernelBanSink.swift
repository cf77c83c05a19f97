import Atomics
import Foundation
import Logging
import RampartCore

/// One change to the kernel's ban sets.
enum KernelBanOp: Equatable {
    /// Ban `address` for `seconds` (the element's timeout).
    case add(IPAddress, seconds: Int)
    /// Lift the ban on `address`.
    case remove(IPAddress)
}

/// Counters of the kernel ban sink, for `/metrics`.
public struct KernelBanStats: Sendable, Equatable {
    /// True while bans are pushed to the kernel.
    public var active: Bool
    /// Elements written (additions and removals), transactions run, transactions that failed,
    /// changes dropped because the queue was full.
    public var elements: Int
    public var batches: Int
    public var errors: Int
    public var dropped: Int
}

/// Pushes bans into an nftables table the gateway owns, off the event loops: ``offer(_:)`` only
/// appends to a bounded queue (dropping and counting when it is full); a dedicated thread sends
/// them in transactions of at most ``maxBatch`` changes, one every ``batchInterval`` at most.
/// The first job, ``start(ports:bans:)``, replaces the table with the bans in force.
///
/// Thread-safety: the queue and flags are guarded by `condition`; the runner is used only by the
/// worker thread.
final class KernelBanSink: @unchecked Sendable {
    /// Most changes in one transaction.
    static let maxBatch = 1000
    /// Longest wait for a batch to fill, seconds.
    static let batchInterval = 0.1
    /// Most changes waiting; more are dropped (and counted): the user-space ban still holds.
    static let queueCapacity = 100_000

    let config: KernelBanConfig
    private let capacity: Int
    private let logger: Logger
    private let condition = NSCondition()
    private var queue: [KernelBanOp] = []
    private var setUp: (ports: [Int], bans: [NftablesDocument.Element], done: @Sendable (String?) -> Void)?
    private var stopping = false
    /// Set when another process took the listening sockets over (binary upgrade): the table is
    /// its now, and `on_exit: flush` must not delete it under it.
    private let tableHandedOver = ManagedAtomic<Bool>(false)
    private var stopped: (@Sendable () -> Void)?
    private var runner: (any NftablesRunner)?
    private let isActive = ManagedAtomic(false)
    private let elements = ManagedAtomic(0)
    private let batches = ManagedAtomic(0)
    private let errors = ManagedAtomic(0)
    private let dropped = ManagedAtomic(0)

    /// A sink for `config`, with sets of `capacity` elements each; nil (after one warning) when
    /// the machine has neither libnftables nor the `nft` binary.
    convenience init?(config: KernelBanConfig, capacity: Int, logger: Logger) {
        guard let runner = openNftables() else {
            logger.warning("bans.kernel is nftables but neither libnftables.so.1 nor the nft binary is installed; bans stay in user space (install the nftables package)")
            return nil
        }
        self.init(config: config, capacity: capacity, logger: logger, runner: runner)
    }

    /// A sink sending its documents to `runner` (tests give a recording one).
    init(config: KernelBanConfig, capacity: Int, logger: Logger, runner: any NftablesRunner) {
        self.runner = runner
        self.config = config
        self.capacity = capacity
        self.logger = logger
        let thread = Thread { [self] in work() }
        thread.name = "rampart-nftables"
        thread.start()
    }

    /// Replaces the table with `bans` (listening on `ports`); calls `done` with nil on success or
    /// the reason it failed (then the sink turns itself off).
    func start(ports: [Int], bans: [NftablesDocument.Element], done: @escaping @Sendable (String?) -> Void) {
        condition.lock()
        setUp = (ports, bans, done)
        condition.signal()
        condition.unlock()
    }

    /// Queues one change; never blocks beyond a short lock. False when dropped.
    @discardableResult
    func offer(_ op: KernelBanOp) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping, queue.count < Self.queueCapacity else {
            dropped.wrappingIncrement(ordering: .relaxed)
            return false
        }
        queue.append(op)
        if queue.count == 1 || queue.count >= Self.maxBatch { condition.signal() }
        return true
    }

    /// Stops the worker after what is queued; deletes the table when configured to. `done` runs
    /// on the worker thread when it has finished.
    func stop(done: @escaping @Sendable () -> Void) {
        condition.lock()
        stopping = true
        stopped = done
        condition.signal()
        condition.unlock()
    }

    /// Leaves the table in place at exit whatever `on_exit` says (a new process serves on).
    func keepTableOnExit() { tableHandedOver.store(true, ordering: .relaxed) }

    /// The counters.
    var stats: KernelBanStats {
        KernelBanStats(
            active: isActive.load(ordering: .relaxed), elements: elements.load(ordering: .relaxed), batches: batches.load(ordering: .relaxed),
            errors: errors.load(ordering: .relaxed), dropped: dropped.load(ordering: .relaxed)
        )
    }

    private func work() {
        while true {
            condition.lock()
            while setUp == nil, queue.isEmpty, !stopping { condition.wait() }
            if let job = setUp {
                setUp = nil
                condition.unlock()
                let started = DispatchTime.now().uptimeNanoseconds
                let error = runner?.run(NftablesDocument.table(config, ports: job.ports, capacity: capacity, elements: job.bans))
                let millis = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6
                batches.wrappingIncrement(ordering: .relaxed)
                if error != nil {
                    errors.wrappingIncrement(ordering: .relaxed)
                    runner = nil
                    condition.lock()
                    queue.removeAll()
                    condition.unlock()
                } else {
                    elements.wrappingIncrement(by: job.bans.count, ordering: .relaxed)
                    isActive.store(true, ordering: .relaxed)
                    logger.notice(
                        "kernel bans on: nftables table loaded",
                        metadata: ["table": "inet \(config.table)", "elements": "\(job.bans.count)", "milliseconds": "\(Int(millis))", "via": "\(runner?.name ?? "")"]
                    )
                }
                job.done(error)
                continue
            }
            if queue.isEmpty, stopping {
                condition.unlock()
                finish()
                return
            }
            // Wait for the batch to fill, at most one interval from now.
            let deadline = Date(timeIntervalSinceNow: Self.batchInterval)
            while queue.count < Self.maxBatch, !stopping, condition.wait(until: deadline) {}
            let n = min(queue.count, Self.maxBatch)
            let ops = Array(queue.prefix(n))
            queue.removeFirst(n)
            condition.unlock()
            guard let runner, !ops.isEmpty else { continue }
            batches.wrappingIncrement(ordering: .relaxed)
            if let error = runner.run(NftablesDocument.batch(ops, config: config)) {
                errors.wrappingIncrement(ordering: .relaxed)
                logger.error("nftables rejected a batch of ban changes", metadata: ["changes": "\(ops.count)", "error": "\(error)"])
            } else {
                elements.wrappingIncrement(by: ops.count, ordering: .relaxed)
            }
        }
    }

    private func finish() {
        if let runner, isActive.load(ordering: .relaxed), config.onExit == .flush, !tableHandedOver.load(ordering: .relaxed) {
            if let error = runner.run(NftablesDocument.deleteTable(config)) {
                logger.error("cannot delete the nftables table", metadata: ["table": "inet \(config.table)", "error": "\(error)"])
            } else {
                logger.notice("nftables table deleted", metadata: ["table": "inet \(config.table)"])
            }
        }
        isActive.store(false, ordering: .relaxed)
        runner = nil
        condition.lock()
        let done = stopped
        condition.unlock()
        done?()
    }
}
