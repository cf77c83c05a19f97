import Foundation
import Logging
import RampartCore
import RampartDataPlane
import RampartState
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The running gateway's side of a binary upgrade, as a service.
///
/// It listens on `STATE/upgrade.sock`. A new process (`rampart run --takeover`) sends
/// `TAKEOVER 1`; this one writes every queued ban and incident to the state database, passes its
/// listening sockets (SCM_RIGHTS, config order) with a line of JSON naming their addresses, and
/// waits for `READY`: the new process now accepts on the same sockets. The service then returns,
/// which shuts the group down gracefully: the admin listener closes (the new process binds it
/// next), and the gateway drains. Closing its copies of the listening sockets does not close the
/// sockets themselves, so no connection waiting in an accept queue is reset. The connection to the
/// new process stays open until this process exits: its end tells the new one that every ban is
/// on disk.
struct HandoverService: Service, CustomStringConvertible {
    let stateFolder: String
    let gateway: Gateway
    let listeners: [HostPort]
    let store: StateStore?
    let logger: Logger
    /// Holds the connection to the new process until exit.
    let successor: SuccessorConnection
    /// With `--takeover`: waits until the previous process has gone (its socket file is replaced
    /// only then).
    let after: (@Sendable () async -> Void)?
    /// Ends the wait of `after` when the group shuts down first.
    let cancelAfter: (@Sendable () -> Void)?

    var description: String { "upgrade-socket" }

    func run() async throws {
        if let after {
            let cancelAfter = self.cancelAfter
            await withGracefulShutdownHandler {
                await after()
            } onGracefulShutdown: {
                cancelAfter?()
            }
            if Task.isShuttingDownGracefully { return }
        }
        let path = UpgradeSocket.path(stateFolder: stateFolder)
        let fd: CInt
        do {
            fd = try UpgradeSocket.listen(at: path)
        } catch {
            logger.error("binary upgrades are not available", metadata: ["error": "\(error)"])
            try? await gracefulShutdown()
            return
        }
        let listening = ListeningFD(fd)
        let handedOver = await withGracefulShutdownHandler {
            await withCheckedContinuation { (done: CheckedContinuation<Bool, Never>) in
                Thread.detachNewThread { done.resume(returning: self.acceptLoop(listening)) }
            }
        } onGracefulShutdown: {
            listening.stop()
        }
        listening.stop()
        if handedOver {
            unlink(path)
            logger.notice("listening sockets handed over to the new process; draining and exiting")
        }
    }

    /// Serves upgrade requests until one succeeds (true) or the socket is shut (false).
    private func acceptLoop(_ listening: ListeningFD) -> Bool {
        while let connection = listening.accept() {
            do {
                if try handOver(connection) {
                    successor.keep(connection)
                    return true
                }
            } catch is CalledOff {
            } catch {
                logger.error("binary upgrade failed; this process keeps serving", metadata: ["error": "\(error)"])
            }
            close(connection)
        }
        return false
    }

    private func handOver(_ connection: CInt) throws -> Bool {
        DescriptorPassing.setReceiveTimeout(connection, seconds: 5)
        guard try DescriptorPassing.readLine(connection) == UpgradeSocket.request else {
            throw DescriptorPassing.Failure("not an upgrade request")
        }
        store?.flush()
        let descriptors = gateway.listeningDescriptors
        guard descriptors.count == listeners.count else { throw DescriptorPassing.Failure("the listeners are not open") }
        let offer = UpgradeOffer(listeners: listeners.map(\.description), pid: Int(getpid()))
        let line = String(decoding: try JSONEncoder().encode(offer), as: UTF8.self)
        try DescriptorPassing.sendDescriptors(connection, descriptors, line: line)
        logger.notice("binary upgrade: listening sockets passed; waiting for the new process", metadata: ["listeners": "\(listeners.count)"])
        // The new process opens its state and builds its event loops, then says it adopts the sockets.
        DescriptorPassing.setReceiveTimeout(connection, seconds: 60)
        guard let adopting = try DescriptorPassing.readLine(connection) else {
            throw DescriptorPassing.Failure("the new process went away before it was ready")
        }
        guard adopting == UpgradeSocket.adopting else { throw DescriptorPassing.Failure("the new process gave up: \(adopting)") }
        // Copies of the sockets, to serve on again should the new process fail from here on.
        let copies = descriptors.map { fcntl($0, F_DUPFD_CLOEXEC, 0) }
        var copiesServed = false
        defer { if !copiesServed { for copy in copies where copy >= 0 { close(copy) } } }
        blocking { await gateway.stopAccepting() }
        do {
            try DescriptorPassing.write(connection, UpgradeSocket.stopped + "\n")
            DescriptorPassing.setReceiveTimeout(connection, seconds: 30)
            guard let reply = try DescriptorPassing.readLine(connection) else {
                throw DescriptorPassing.Failure("the new process went away before it served")
            }
            guard reply == UpgradeSocket.ready else { throw DescriptorPassing.Failure("the new process gave up: \(reply)") }
            return true
        } catch {
            guard !copies.contains(where: { $0 < 0 }) else { throw error }
            let gateway = self.gateway
            let resumed: (any Error)? = blocking {
                do {
                    try await gateway.resumeListening(adopting: copies)
                    return nil
                } catch {
                    return error
                }
            }
            if let resumed {
                logger.critical("binary upgrade failed and the listening sockets cannot be served again", metadata: ["error": "\(resumed)"])
                throw error
            }
            copiesServed = true
            logger.error("binary upgrade called off; this process serves again", metadata: ["error": "\(error)"])
            throw CalledOff()
        }
    }

    /// The upgrade failed after this process had stopped accepting; it serves again on copies of
    /// its sockets (which the gateway now owns).
    private struct CalledOff: Error {}

    /// Runs async work from this blocking thread and waits for it.
    private func blocking<T: Sendable>(_ work: @escaping @Sendable () async -> T) -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        Task {
            box.value = await work()
            done.signal()
        }
        done.wait()
        return box.value!
    }
}

/// A value handed from a task to the thread waiting for it.
private final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}

/// What the running process tells the new one with its sockets.
struct UpgradeOffer: Codable {
    /// The listeners' configured addresses, in the order of the descriptors.
    var listeners: [String]
    /// Its process id (for the log).
    var pid: Int
}

/// The listening unix socket, shut from another thread to end a blocking `accept`.
final class ListeningFD: @unchecked Sendable {
    private let lock = NSLock()
    private var fd: CInt

    init(_ fd: CInt) { self.fd = fd }

    func accept() -> CInt? {
        lock.lock()
        let current = fd
        lock.unlock()
        guard current >= 0 else { return nil }
        while true {
            let connection = systemAccept(current, nil, nil)
            if connection >= 0 {
                _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
                return connection
            }
            if errno == EINTR || errno == ECONNABORTED { continue }
            return nil
        }
    }

    func stop() {
        lock.lock()
        defer { lock.unlock() }
        guard fd >= 0 else { return }
        shutdown(fd, CInt(SHUT_RDWR))
        close(fd)
        fd = -1
    }
}

/// The connection to the process that took over, kept open until this one exits.
final class SuccessorConnection: @unchecked Sendable {
    private let lock = NSLock()
    private var fd: CInt = -1

    func keep(_ fd: CInt) {
        lock.lock()
        self.fd = fd
        lock.unlock()
    }

    /// Closes it: the new process reads the end and loads the last bans.
    func close() {
        lock.lock()
        defer { lock.unlock() }
        if fd >= 0 {
            _ = systemClose(fd)
            fd = -1
        }
    }
}

#if canImport(Glibc)
private let systemClose = Glibc.close
private let systemAccept = Glibc.accept
#else
private let systemClose = Darwin.close
private let systemAccept = Darwin.accept
#endif
