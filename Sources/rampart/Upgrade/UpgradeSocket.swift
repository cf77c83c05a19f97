import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The unix socket in the state folder (`STATE/upgrade.sock`, mode 0600) through which a new
/// `rampart run --takeover` asks the running one for its listening sockets.
enum UpgradeSocket {
    /// The socket's file name inside the state folder.
    static let fileName = "upgrade.sock"

    static func path(stateFolder: String) -> String {
        (stateFolder as NSString).appendingPathComponent(fileName)
    }

    /// The request line a new process sends, and the reply that says it serves.
    static let request = "TAKEOVER 1"
    static let ready = "READY"
    /// The new process is about to accept on the sockets; the running one stops accepting first
    /// (two processes accepting on one socket wake each other for nothing) and says `STOPPED`.
    static let adopting = "ADOPTING"
    static let stopped = "STOPPED"

    private static func address(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else {
            throw DescriptorPassing.Failure("\(path): a unix socket path has at most \(capacity - 1) bytes; use a shorter state folder path")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }

    private static func makeSocket() throws -> CInt {
        #if canImport(Glibc)
        let fd = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_UNIX, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw DescriptorPassing.Failure("unix socket", errno: errno) }
        return fd
    }

    /// Binds and listens at `path` (a stale file from an earlier process is replaced), mode 0600.
    static func listen(at path: String) throws -> CInt {
        var address = try address(path)
        let fd = try makeSocket()
        unlink(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { systemBind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, chmod(path, 0o600) == 0, systemListen(fd, 4) == 0 else {
            let code = errno
            close(fd)
            throw DescriptorPassing.Failure("listen on \(path)", errno: code)
        }
        return fd
    }

    /// Connects to the running gateway's socket.
    static func connect(to path: String) throws -> CInt {
        var address = try address(path)
        let fd = try makeSocket()
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { systemConnect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let code = errno
            close(fd)
            throw DescriptorPassing.Failure("no running gateway answers at \(path)", errno: code)
        }
        return fd
    }
}

#if canImport(Glibc)
private let systemBind = Glibc.bind
private let systemListen = Glibc.listen
private let systemConnect = Glibc.connect
#else
private let systemBind = Darwin.bind
private let systemListen = Darwin.listen
private let systemConnect = Darwin.connect
#endif
