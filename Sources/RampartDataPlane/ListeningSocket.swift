import NIOCore
import RampartCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A listening TCP socket the gateway makes itself rather than through NIO's `bind`, so that it
/// holds the descriptor: a binary upgrade hands the very same socket (with the connections waiting
/// in its accept queue) to the new process, which adopts it with `ServerBootstrap.withBoundSocket`.
enum ListeningSocket {
    /// The accept queue's length, in connections (the kernel caps it at `net.core.somaxconn`).
    static let backlog: CInt = 4096

    /// A new TCP socket bound to `address` (SO_REUSEADDR on), not yet listening.
    static func bind(_ address: HostPort) throws -> CInt {
        let socketAddress = try SocketAddress.makeAddressResolvingHost(address.host, port: address.port)
        let family: CInt
        switch socketAddress {
        case .v4: family = AF_INET
        case .v6: family = AF_INET6
        default: throw IOError(errnoCode: EAFNOSUPPORT, reason: "listener \(address)")
        }
        #if canImport(Glibc)
        let fd = socket(family, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(family, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw IOError(errnoCode: errno, reason: "socket for \(address)") }
        var one: CInt = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        let result = socketAddress.withSockAddr { pointer, size in systemBind(fd, pointer, socklen_t(size)) }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw IOError(errnoCode: code, reason: "bind(\(address))")
        }
        return fd
    }

    /// Sets the accept queue's length on a socket NIO already listens on (NIO uses 128).
    static func widenBacklog(_ fd: CInt) {
        _ = listen(fd, backlog)
    }
}

#if canImport(Glibc)
private let systemBind = Glibc.bind
#else
private let systemBind = Darwin.bind
#endif
