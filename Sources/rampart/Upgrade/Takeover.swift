import Foundation
import RampartCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The new process's side of a binary upgrade (`rampart run --takeover`): it asks the running
/// gateway on `STATE/upgrade.sock` for its listening sockets, serves on them, says `READY`, and
/// learns that the previous process has exited (every ban written) when the connection ends.
final class Takeover: Sendable {
    /// The handed-over listening sockets, in config order.
    let descriptors: [CInt]
    /// The previous process's id.
    let previousPID: Int
    private let connection: CInt
    /// Signalled once `READY` is sent (or the takeover is given up): only then may the end of the
    /// connection be awaited, the replies before it are read by ``adopting()``.
    private let readySent = DispatchSemaphore(value: 0)

    private init(descriptors: [CInt], previousPID: Int, connection: CInt) {
        self.descriptors = descriptors
        self.previousPID = previousPID
        self.connection = connection
    }

    /// Asks the gateway running with `stateFolder` for its sockets. The listeners must be the
    /// configured ones, in the same order: a takeover keeps the listening sockets as they are.
    static func begin(stateFolder: String, listeners: [HostPort]) throws -> Takeover {
        let path = UpgradeSocket.path(stateFolder: stateFolder)
        let fd = try UpgradeSocket.connect(to: path)
        do {
            try DescriptorPassing.write(fd, UpgradeSocket.request + "\n")
            DescriptorPassing.setReceiveTimeout(fd, seconds: 30)
            let (descriptors, line) = try DescriptorPassing.receiveDescriptors(fd)
            guard let offer = try? JSONDecoder().decode(UpgradeOffer.self, from: Data(line.utf8)) else {
                for d in descriptors { close(d) }
                throw DescriptorPassing.Failure("\(path): not a Rampart upgrade offer")
            }
            let wanted = listeners.map(\.description)
            guard offer.listeners == wanted, descriptors.count == wanted.count else {
                for d in descriptors { close(d) }
                try? DescriptorPassing.write(fd, "REFUSED listeners differ\n")
                throw DescriptorPassing.Failure(
                    "the running gateway (pid \(offer.pid)) listens on \(offer.listeners.joined(separator: ", ")), this config on \(wanted.joined(separator: ", ")): a takeover keeps the listeners as they are; restart to change them"
                )
            }
            return Takeover(descriptors: descriptors, previousPID: offer.pid, connection: fd)
        } catch {
            close(fd)
            throw error
        }
    }

    /// Asks the previous process to stop accepting (it answers once it has), just before this one
    /// starts accepting on the sockets: connections arriving in between wait in the accept queue.
    func adopting() throws {
        try DescriptorPassing.write(connection, UpgradeSocket.adopting + "\n")
        DescriptorPassing.setReceiveTimeout(connection, seconds: 10)
        guard let reply = try DescriptorPassing.readLine(connection), reply == UpgradeSocket.stopped else {
            throw DescriptorPassing.Failure("the running gateway did not stop accepting")
        }
    }

    /// Tells the previous process that this one accepts on the sockets: it drains and exits.
    func ready() throws {
        defer { readySent.signal() }
        try DescriptorPassing.write(connection, UpgradeSocket.ready + "\n")
    }

    /// Stops waiting for the previous process (this one shuts down).
    func cancel() {
        shutdown(connection, CInt(SHUT_RDWR))
        readySent.signal()
    }

    /// Gives up (this process could not start): the previous one keeps serving.
    func abort(_ reason: String) {
        try? DescriptorPassing.write(connection, "ABORT \(reason)\n")
        close(connection)
    }

    /// Returns once the previous process has exited (its end of the connection closed).
    func previousExited() async {
        let fd = connection
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread { [readySent] in
                readySent.wait()
                DescriptorPassing.setReceiveTimeout(fd, seconds: 0)
                while (try? DescriptorPassing.readLine(fd)) ?? nil != nil {}
                close(fd)
                done.resume()
            }
        }
    }
}
