import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The unprivileged account `rampart run --user NAME` switches to once its sockets are bound.
///
/// Rampart does not refuse to start as root: the command-line contract (`rampart run --listen ...`)
/// is driven as root by test harnesses and containers, and kernel bans (`bans.kernel: nftables`)
/// need `CAP_NET_ADMIN`. Started as root with `--user`, it binds its listeners and the admin port
/// (ports below 1024 included), opens the state database, hands the state folder to that account,
/// then gives up root for good (supplementary groups, group, user; a later `setuid(0)` must fail).
/// Started as root without `--user`, it says so in the log once. The hardened way to run it is the
/// systemd unit in `examples/rampart.service`: an unprivileged user from the start, with
/// `CAP_NET_BIND_SERVICE` only.
struct PrivilegeDrop {
    /// The account name, as given.
    let name: String
    /// Its user id.
    let uid: uid_t
    /// Its primary group id.
    let gid: gid_t

    /// Looks the account up; an unknown name, or `--user` without root, is an error naming the flag.
    init(user name: String) throws {
        guard let entry = getpwnam(name) else {
            throw DropError("--user \(name): no such user")
        }
        self.name = name
        uid = entry.pointee.pw_uid
        gid = entry.pointee.pw_gid
        if geteuid() != 0, geteuid() != uid {
            throw DropError("--user \(name): switching users needs root; start Rampart as root, or as \(name) without --user")
        }
    }

    /// Gives the state folder and the files directly in it (database, key, token) to the account,
    /// so it can keep writing bans and incidents after the switch. Symbolic links are not followed.
    func handOver(stateFolder: String) throws {
        var paths = [stateFolder]
        for entry in try FileManager.default.contentsOfDirectory(atPath: stateFolder) {
            paths.append((stateFolder as NSString).appendingPathComponent(entry))
        }
        for path in paths where lchown(path, uid, gid) != 0 {
            throw DropError("cannot give \(path) to \(name): \(String(cString: strerror(errno)))")
        }
    }

    /// Switches the whole process (every thread) to the account, for good.
    ///
    /// Linux keeps credentials per thread; glibc's `setuid` switches every thread it knows of, but
    /// skips a thread inside `pthread_exit`, and that is where libdispatch parks the main thread of
    /// an async `main`. So the switch is made on the main thread itself, from a signal handler
    /// (glibc then switches every other thread), and every thread is checked afterwards.
    func apply() throws {
        guard geteuid() == 0 else { return }
        #if os(Linux)
        try switchFromMainThread()
        #else
        try switchHere()
        #endif
        // Root must be gone for good, not only set aside, on every thread.
        if uid != 0, setuid(0) == 0 { throw DropError("root could be regained after switching to \(name)") }
        #if os(Linux)
        if let stray = Self.threadsNotRunningAs(uid: uid, gid: gid), !stray.isEmpty {
            throw DropError("threads \(stray) still run with other credentials after switching to \(name)")
        }
        #endif
    }

    private func switchHere() throws {
        guard setgroups(0, nil) == 0 else { throw DropError("setgroups: \(String(cString: strerror(errno)))") }
        guard setgid(gid) == 0 else { throw DropError("setgid(\(gid)): \(String(cString: strerror(errno)))") }
        guard setuid(uid) == 0 else { throw DropError("setuid(\(uid)): \(String(cString: strerror(errno)))") }
    }

    #if os(Linux)
    private func switchFromMainThread() throws {
        typealias ThreadKill = @convention(c) (pid_t, pid_t, Int32) -> Int32
        guard let symbol = dlsym(nil, "tgkill") else { return try switchHere() }
        let threadKill = unsafeBitCast(symbol, to: ThreadKill.self)
        let signal = __libc_current_sigrtmin() + 7
        dropTarget = (uid, gid)
        dropOutcome = -1
        var action = sigaction()
        action.__sigaction_handler.sa_handler = dropOnThisThread
        sigemptyset(&action.sa_mask)
        guard sigaction(signal, &action, nil) == 0 else { throw DropError("sigaction: \(String(cString: strerror(errno)))") }
        let pid = getpid()
        guard threadKill(pid, pid, signal) == 0 else { throw DropError("tgkill: \(String(cString: strerror(errno)))") }
        for _ in 0..<200 where dropOutcome == -1 { usleep(10_000) }
        switch dropOutcome {
        case 0: return
        case -1: throw DropError("the main thread did not switch users within 2 s")
        case let code: throw DropError("switching users on the main thread: \(String(cString: strerror(code)))")
        }
    }

    /// Thread ids whose real, effective, saved or file-system user or group id differ from the
    /// target; nil when /proc cannot tell.
    static func threadsNotRunningAs(uid: uid_t, gid: gid_t) -> [String]? {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return nil }
        return tasks.filter { task in
            guard let status = try? String(contentsOfFile: "/proc/self/task/\(task)/status", encoding: .utf8) else { return false }
            let ids = status.split(separator: "\n").filter { $0.hasPrefix("Uid:") || $0.hasPrefix("Gid:") }
                .map { $0.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().compactMap { UInt32($0) } }
            return ids.count != 2 || ids[0] != Array(repeating: uid, count: 4) || ids[1] != Array(repeating: gid, count: 4)
        }
    }
    #endif

    /// The message for a failed lookup or switch.
    struct DropError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}

#if os(Linux)
/// The account the signal handler switches to (a C signal handler cannot capture).
nonisolated(unsafe) private var dropTarget: (uid: uid_t, gid: gid_t) = (0, 0)
/// -1 until the handler ran; then 0, or the errno of the call that failed.
nonisolated(unsafe) private var dropOutcome: Int32 = -1

/// Runs on the thread the signal was sent to: glibc switches this thread, then every other one.
private let dropOnThisThread: @convention(c) (Int32) -> Void = { _ in
    let target = dropTarget
    if setgroups(0, nil) != 0 || setgid(target.gid) != 0 || setuid(target.uid) != 0 {
        dropOutcome = errno
    } else {
        dropOutcome = 0
    }
}
#endif

/// Drops root after binding when `--user` was given; otherwise notes in the log that the gateway
/// runs as root, with the way out.
func dropPrivileges(_ drop: PrivilegeDrop?, stateFolder: String, logger: Logger) throws {
    guard let drop else {
        if geteuid() == 0 {
            logger.warning("running as root: give --user NAME to switch to an unprivileged account after binding, or run it from examples/rampart.service")
        }
        return
    }
    do {
        if geteuid() == 0 { try drop.handOver(stateFolder: stateFolder) }
        try drop.apply()
    } catch {
        logger.critical("cannot switch to the unprivileged user", metadata: ["user": "\(drop.name)", "error": "\(error)"])
        throw error
    }
    logger.notice("running as an unprivileged user", metadata: ["user": "\(drop.name)", "uid": "\(drop.uid)"])
}
