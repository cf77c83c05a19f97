import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Files that hold a secret (the signing key, the generated admin token): written whole or not at
/// all, readable by their owner only. A reader never sees a half-written key, and no other user of
/// the machine can read one, not even for the moment between creating the file and setting its mode.
package enum SecretFile {
    /// The mode every secret file gets: read and write for its owner, nothing for anyone else.
    package static let mode: mode_t = 0o600

    /// Why a secret file could not be written or fixed, with the path and the system's reason.
    package struct Failure: Error, CustomStringConvertible {
        /// The file (or its temporary sibling) the operation was on.
        package let path: String
        /// What was being done: "create", "write", "sync", "rename", "chmod".
        package let operation: String
        /// The `errno` the system reported.
        package let code: Int32

        /// "OPERATION PATH: reason".
        package var description: String { "\(operation) \(path): \(String(cString: strerror(code)))" }
    }

    /// `count` bytes from the system's cryptographically secure generator.
    package static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    /// Replaces (or creates) `path` with `bytes`, atomically: the bytes go to a new temporary file
    /// in the same folder, created with mode 0600 and synced to disk, which is then renamed over
    /// `path`. Either the old file or the complete new one is in place at every moment.
    package static func replace(at path: String, with bytes: [UInt8]) throws {
        let folder = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let suffix = randomBytes(6).map { String(format: "%02x", $0) }.joined()
        let temporary = ((folder.isEmpty ? "." : folder) as NSString).appendingPathComponent(".\(name).\(suffix).tmp")
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw Failure(path: temporary, operation: "create", code: errno) }
        var renamed = false
        defer {
            if !renamed { unlink(temporary) }
        }
        do {
            defer { close(fd) }
            // The umask can only take bits away from `open`'s mode; set it exactly anyway.
            guard fchmod(fd, mode) == 0 else { throw Failure(path: temporary, operation: "chmod", code: errno) }
            var written = 0
            while written < bytes.count {
                let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { throw Failure(path: temporary, operation: "write", code: errno) }
                written += n
            }
            guard fsync(fd) == 0 else { throw Failure(path: temporary, operation: "sync", code: errno) }
        }
        guard rename(temporary, path) == 0 else { throw Failure(path: path, operation: "rename", code: errno) }
        renamed = true
        // Make the rename itself durable; a folder that cannot be opened for this is no reason to fail.
        let dir = open(folder.isEmpty ? "." : folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }

    /// Makes an existing secret file readable by its owner only when group or others have any
    /// access to it (files written by older versions, or copied in by hand). Returns true when the
    /// mode was changed, so the caller can say so.
    package static func restrictToOwner(_ path: String) throws -> Bool {
        var info = stat()
        guard stat(path, &info) == 0 else { return false }
        guard info.st_mode & 0o077 != 0 else { return false }
        guard chmod(path, mode) == 0 else { throw Failure(path: path, operation: "chmod", code: errno) }
        return true
    }
}
