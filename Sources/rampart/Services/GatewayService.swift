import Logging
import NIOCore
import RampartCore
import RampartDataPlane
import ServiceLifecycle

/// The data plane as a service: binds the listeners, serves until graceful shutdown, then drains.
///
/// The drain closes the listening sockets first (new connections are refused from that moment),
/// lets every request in flight finish, and gives up after `timeouts.drain`: what is still open
/// then is closed. The event loops keep running until the services after it (detection, health
/// checks, the state writer) have stopped; `serve` stops them last.
struct GatewayService: Service, CustomStringConvertible {
    let gateway: Gateway
    /// `timeouts.drain`: the longest a shutdown waits for requests in flight.
    let drainTimeout: TimeAmount
    let logger: Logger
    /// Listening sockets handed over by the process this one replaces (`--takeover`), else nil.
    let adopting: [CInt]?
    /// Called just before handed-over sockets are adopted (the previous process stops accepting).
    let beforeAdopting: (@Sendable () throws -> Void)?
    /// Told the bound addresses (config order) once every listener is up.
    let onListening: @Sendable ([SocketAddress]) -> Void

    var description: String { "gateway" }

    func run() async throws {
        let addresses: [SocketAddress]
        do {
            if adopting != nil { try beforeAdopting?() }
            addresses = try await gateway.bind(adopting: adopting)
        } catch {
            throw LifecycleError(.listeners, error)
        }
        onListening(addresses)
        // Returns when the group shuts down gracefully (SIGTERM, SIGINT, a failed service); throws
        // when the task is cancelled. Either way the requests in flight get their drain.
        try? await gracefulShutdown()
        logger.notice("shutting down: draining in-flight requests", metadata: ["drain_timeout_ms": "\(drainTimeout.nanoseconds / 1_000_000)"])
        await gateway.drain(timeout: drainTimeout)
    }
}

/// Why the gateway could not start or run: the part that failed and the underlying error.
struct LifecycleError: Error, CustomStringConvertible {
    /// The part of the gateway that failed.
    enum Part: String, Sendable {
        case listeners = "cannot start listeners"
        case admin = "cannot listen on the admin address: free the port or choose another with --admin or admin.listen"
        case privileges = "cannot switch to the unprivileged user"
        case takeover = "cannot take over from the running gateway"
        case fleet = "cannot start the fleet node"
    }

    let part: Part
    let underlying: any Error
    /// What it was about (an address, a user), when there is one.
    let subject: String?

    init(_ part: Part, _ underlying: any Error, subject: String? = nil) {
        self.part = part
        self.underlying = underlying
        self.subject = subject
    }

    var description: String { "\(part.rawValue)\(subject.map { " (\($0))" } ?? ""): \(underlying)" }
}
