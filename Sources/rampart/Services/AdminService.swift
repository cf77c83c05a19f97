import Foundation
import Logging
import RampartAdmin
import RampartCore
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The admin listener (dashboard, API, /metrics) as a service. It binds when the group starts,
/// prints the dashboard link, and stops first on shutdown (before the gateway drains).
///
/// The link carries the token (`http://ADMIN/?token=TOKEN`) only when a person is likely the one
/// reading it: standard output is a terminal, or the token was made on this start (nobody has it
/// yet). Otherwise standard output is probably a log file, and the line says where the token is.
/// A port that cannot be bound at start is an error (exit 1): a gateway nobody can watch or steer
/// during an attack is worse than one the service manager restarts once the port is free.
struct AdminService: Service, CustomStringConvertible {
    let server: AdminServer
    let address: HostPort
    let token: AdminToken
    let logger: Logger
    /// How long a taken port is tried again (a binary upgrade: the previous process lets it go
    /// when it starts draining); zero otherwise.
    let retryFor: Duration
    /// Told the bound port once the listener is up.
    let onBound: @Sendable (Int) -> Void

    var description: String { "admin" }

    func run() async throws {
        let address = self.address
        let token = self.token
        let onBound = self.onBound
        let bound = OnceFlag()
        do {
            // Cancelled, not drained, on shutdown: a dashboard's event stream stays open for as long
            // as the page does and must not hold up the gateway's drain.
            try await cancelWhenGracefulShutdown {
                let deadline = ContinuousClock.now + self.retryFor
                while true {
                    do {
                        try await self.serve(address: address, token: token, bound: bound, onBound: onBound)
                        return
                    } catch where !bound.isSet && ContinuousClock.now < deadline && !(error is CancellationError) {
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
            }
        } catch is CancellationError {
            return
        } catch {
            if bound.isSet { throw error }
            throw LifecycleError(.admin, error, subject: "\(address)")
        }
    }

    private func serve(address: HostPort, token: AdminToken, bound: OnceFlag, onBound: @escaping @Sendable (Int) -> Void) async throws {
        try await server.run(address: address) { port in
            bound.set()
            let host = address.host == "0.0.0.0" || address.host == "::" ? "127.0.0.1" : address.host
            let link = "http://\(HostPort(host: host, port: port))/"
            if isatty(STDOUT_FILENO) != 0 || token.isNew {
                say("Rampart dashboard: \(link)?token=\(AdminToken.encoded(token.value))")
            } else {
                say("Rampart dashboard: \(link) (sign in with the admin token from \(token.whereToFind))")
            }
            onBound(port)
        }
    }
}

/// A flag set once, read from another task.
final class OnceFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    func set() {
        lock.lock()
        value = true
        lock.unlock()
    }

    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}
