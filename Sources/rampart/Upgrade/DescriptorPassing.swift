import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Blocking helpers for the upgrade socket (a unix stream socket in the state folder): lines of
/// text, and listening sockets passed as SCM_RIGHTS ancillary data with a line of JSON.
/// Used on their own threads, never on an event loop.
enum DescriptorPassing {
    /// The most descriptors one hand-over carries (one per listener).
    static let maxDescriptors = 64

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ what: String, errno code: CInt? = nil) {
            description = code.map { "\(what): \(String(cString: strerror($0)))" } ?? what
        }
    }

    /// Sets a receive timeout (seconds) on a blocking socket.
    static func setReceiveTimeout(_ fd: CInt, seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Writes `text` whole.
    static func write(_ fd: CInt, _ text: String) throws {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, CInt(MSG_NOSIGNAL)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw Failure("write to the upgrade socket", errno: errno) }
            bytes = bytes.dropFirst(n)
        }
    }

    /// Reads one line (without its newline), at most 64 KiB; nil when the peer closed first.
    static func readLine(_ fd: CInt) throws -> String? {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < 65_536 {
            let n = recv(fd, &byte, 1, 0)
            if n < 0, errno == EINTR { continue }
            if n < 0 { throw Failure("read from the upgrade socket", errno: errno) }
            if n == 0 { return nil }
            if byte == 0x0A { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        }
        throw Failure("a line on the upgrade socket is longer than 64 KiB")
    }

    private static var headerSpace: Int { align(MemoryLayout<cmsghdr>.size) }
    private static func align(_ n: Int) -> Int { (n + MemoryLayout<Int>.size - 1) & ~(MemoryLayout<Int>.size - 1) }

    /// Runs `body` with a message whose one data buffer is `payload` and whose control buffer is
    /// `control` (for sendmsg and recvmsg).
    private static func withMessage(payload: inout [UInt8], control: inout [UInt8], _ body: (inout msghdr) -> Int) -> Int {
        payload.withUnsafeMutableBytes { data -> Int in
            control.withUnsafeMutableBytes { controlBytes -> Int in
                var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
                return withUnsafeMutablePointer(to: &vector) { iov in
                    var message = msghdr()
                    message.msg_iov = iov
                    message.msg_iovlen = 1
                    message.msg_control = controlBytes.baseAddress
                    message.msg_controllen = .init(controlBytes.count)
                    return body(&message)
                }
            }
        }
    }

    /// Sends `descriptors` with `line` (a newline is added) in one message.
    static func sendDescriptors(_ fd: CInt, _ descriptors: [CInt], line: String) throws {
        guard !descriptors.isEmpty, descriptors.count <= maxDescriptors else { throw Failure("cannot pass \(descriptors.count) descriptors") }
        var payload = Array((line + "\n").utf8)
        let dataLength = descriptors.count * MemoryLayout<CInt>.size
        var control = [UInt8](repeating: 0, count: headerSpace + align(dataLength))
        control.withUnsafeMutableBytes { raw in
            let header = raw.baseAddress!.assumingMemoryBound(to: cmsghdr.self)
            header.pointee.cmsg_len = .init(headerSpace + dataLength)
            header.pointee.cmsg_level = SOL_SOCKET
            header.pointee.cmsg_type = CInt(SCM_RIGHTS)
            descriptors.withUnsafeBytes { (raw.baseAddress! + headerSpace).copyMemory(from: $0.baseAddress!, byteCount: dataLength) }
        }
        let sent = withMessage(payload: &payload, control: &control) { message in sendmsg(fd, &message, CInt(MSG_NOSIGNAL)) }
        guard sent == payload.count else { throw Failure("pass the listening sockets", errno: sent < 0 ? errno : nil) }
    }

    /// Receives descriptors and the line sent with them. The descriptors are close-on-exec.
    static func receiveDescriptors(_ fd: CInt) throws -> (descriptors: [CInt], line: String) {
        var payload = [UInt8](repeating: 0, count: 65_536)
        var control = [UInt8](repeating: 0, count: headerSpace + align(maxDescriptors * MemoryLayout<CInt>.size))
        var controlLength = 0
        let received = withMessage(payload: &payload, control: &control) { message in
            #if canImport(Glibc)
            let n = recvmsg(fd, &message, CInt(MSG_CMSG_CLOEXEC))
            #else
            let n = recvmsg(fd, &message, 0)
            #endif
            controlLength = Int(message.msg_controllen)
            return n
        }
        guard received > 0 else { throw Failure("receive the listening sockets", errno: received < 0 ? errno : nil) }
        var descriptors: [CInt] = []
        if controlLength >= headerSpace {
            control.withUnsafeBytes { raw in
                let header = raw.baseAddress!.assumingMemoryBound(to: cmsghdr.self).pointee
                guard header.cmsg_level == SOL_SOCKET, header.cmsg_type == CInt(SCM_RIGHTS) else { return }
                let count = (Int(header.cmsg_len) - headerSpace) / MemoryLayout<CInt>.size
                for i in 0..<max(0, min(count, maxDescriptors)) {
                    descriptors.append(raw.load(fromByteOffset: headerSpace + i * MemoryLayout<CInt>.size, as: CInt.self))
                }
            }
        }
        var text = String(decoding: payload[0..<received], as: UTF8.self)
        if text.hasSuffix("\n") { text.removeLast() }
        return (descriptors, text)
    }
}
