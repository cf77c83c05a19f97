import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Every suite that starts processes, floods loopback or drives a browser is nested here and runs
/// one at a time: on a 2-core CI machine, timing-sensitive tests must not compete with chromium or
/// with another test's flood for the CPU.
@Suite(.serialized) enum IntegrationTests {}

/// The built `rampart` executable, next to the test bundle.
enum Binary {
    static var rampart: String { path("rampart") }

    /// The package's executable `name`: next to the test bundle (the build being tested), or in
    /// `RAMPART_BINARY_DIR` when set (e.g. `.build/release`, to measure the release build with
    /// the debug tests: `bench/soak.sh`).
    static func path(_ name: String) -> String {
        if let dir = ProcessInfo.processInfo.environment["RAMPART_BINARY_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir).appendingPathComponent(name).path
        }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // Inside an .xctest bundle on some platforms the binary sits deeper.
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path), dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir.appendingPathComponent(name).path
    }
}

/// A `rampart` process started for one test, with its stdout lines and stderr captured.
final class GatewayProcess: @unchecked Sendable {
    let process = Process()
    let directory: URL
    private let lines = LineCollector()
    private let errors = LineCollector()
    /// Listener ports, in config order, as printed by the gateway.
    private(set) var ports: [Int] = []

    /// Starts `rampart run --config` with `yaml` written to a fresh temporary folder.
    init(yaml: String, extraArguments: [String] = []) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-it-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try yaml.write(to: configURL, atomically: true, encoding: .utf8)
        // Each test's gateway gets its own admin port (tests run side by side).
        let admin = extraArguments.contains("--admin") ? [] : ["--admin", "127.0.0.1:0"]
        try launch(["run", "--config", configURL.path, "--state", directory.appendingPathComponent("state").path] + admin + extraArguments)
    }

    /// Starts `rampart` (or another of the package's executables) with the given arguments.
    init(arguments: [String], executable: String = "rampart") throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-it-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try launch(arguments, executable: executable)
    }

    var configURL: URL { directory.appendingPathComponent("rampart.yaml") }

    private func launch(_ arguments: [String], executable: String = "rampart") throws {
        process.executableURL = URL(fileURLWithPath: Binary.path(executable))
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let lines = self.lines
        let errors = self.errors
        out.fileHandleForReading.readabilityHandler = { lines.append($0.availableData) }
        err.fileHandleForReading.readabilityHandler = { errors.append($0.availableData) }
        try process.run()
    }

    /// Waits until the gateway printed `count` listening lines; returns their ports.
    @discardableResult
    func waitUntilListening(count: Int = 1, timeout: Double = 20) throws -> [Int] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let found = lines.all.compactMap { line -> Int? in
                guard line.hasPrefix("Rampart listening on http") else { return nil }
                let trimmed = line.drop { $0 != "/" }.dropFirst(2).dropLast()
                return trimmed.split(separator: ":").last.flatMap { Int($0) }
            }
            if found.count >= count {
                ports = found
                return found
            }
            if !process.isRunning { break }
            usleep(20_000)
        }
        throw TestFailure("gateway did not start; stderr:\n\(errors.text)")
    }

    /// The admin port from the printed dashboard line (printed with or without the token: the
    /// token is in the link only on the start that generated it or on a terminal).
    func adminPort(timeout: Double = 20) throws -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            for line in lines.all where line.hasPrefix("Rampart dashboard: http://") {
                let hostPort = line.dropFirst("Rampart dashboard: http://".count).prefix { $0 != "/" }
                if let port = hostPort.split(separator: ":").last.flatMap({ Int($0) }) { return port }
            }
            if !process.isRunning { break }
            usleep(20_000)
        }
        throw TestFailure("no dashboard line; stderr:\n\(errors.text)")
    }

    /// The admin port and token from the printed dashboard link.
    func adminLink(timeout: Double = 20) throws -> (port: Int, token: String) {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            for line in lines.all where line.hasPrefix("Rampart dashboard: http://") {
                let rest = line.dropFirst("Rampart dashboard: http://".count)
                let hostPort = rest.prefix { $0 != "/" }
                if let port = hostPort.split(separator: ":").last.flatMap({ Int($0) }), let t = rest.range(of: "?token=") {
                    return (port, String(rest[t.upperBound...]))
                }
            }
            if !process.isRunning { break }
            usleep(20_000)
        }
        throw TestFailure("no dashboard link; stderr:\n\(errors.text)")
    }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits for exit; returns the status, or nil on timeout.
    func waitForExit(timeout: Double = 20) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        guard !process.isRunning else { return nil }
        // The last words (an error message, say) may still be on their way through the pipes:
        // wait for both to end (bounded: a child the gateway started may hold them open).
        let drained = Date().addingTimeInterval(2)
        while !(lines.isComplete && errors.isComplete), Date() < drained { usleep(10_000) }
        return process.terminationStatus
    }

    var stderrText: String { errors.text }

    func stop() {
        if process.isRunning {
            signal(SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }
}

/// Runs a program to its end (`/usr/bin/env NAME ARGS`, or a path); returns its exit status and
/// its standard output and error together.
func runProgram(_ arguments: [String], executable: String = "/usr/bin/env", input: String? = nil) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    let inPipe = Pipe()
    p.standardInput = inPipe
    try p.run()
    if let input { inPipe.fileHandleForWriting.write(Data(input.utf8)) }
    try? inPipe.fileHandleForWriting.close()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A helper program from `Tests/tools` (a Python script) that prints `PORT n` once it listens,
/// then keeps printing what it sees; stopped when the test ends.
final class ToolProcess: @unchecked Sendable {
    let process = Process()
    /// Everything it printed.
    let output = LineCollector()

    init(_ script: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", IntegrationTests.BrowserTests.repo.appendingPathComponent("Tests/tools/\(script)").path] + arguments
        let out = Pipe()
        process.standardOutput = out
        // Its own pipe for errors too: an inherited one would keep `swift test` waiting if it outlived us.
        process.standardError = out
        let output = self.output
        out.fileHandleForReading.readabilityHandler = { output.append($0.availableData) }
        try process.run()
    }

    /// The port it printed.
    func port() throws -> Int {
        guard eventually({ output.all.contains { $0.hasPrefix("PORT ") } }),
            let port = output.all.first(where: { $0.hasPrefix("PORT ") }).flatMap({ Int($0.dropFirst(5)) })
        else { throw TestFailure("\(process.arguments ?? []) printed no port: \(output.text)") }
        return port
    }

    /// SIGKILL: children inherit the test process's blocked signals, so SIGTERM may not reach them.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    deinit { stop() }
}

/// Collects text from a pipe, thread-safely.
final class LineCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private var ended = false

    /// A chunk read from the pipe; an empty one is the end of the stream.
    func append(_ chunk: Data) {
        lock.lock()
        if chunk.isEmpty { ended = true } else { data.append(chunk) }
        lock.unlock()
    }

    /// The writer closed the pipe and everything it wrote is here.
    var isComplete: Bool {
        lock.lock()
        defer { lock.unlock() }
        return ended
    }

    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }

    var all: [String] { text.split(separator: "\n").map(String.init) }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A blocking TCP client on loopback that can choose its source address, for tests that need raw
/// bytes (slow clients, smuggling, PROXY headers) and many source addresses.
final class RawClient {
    let fd: Int32

    init(port: Int, source: String = "127.0.0.1", host: String = "127.0.0.1") throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket failed") }
        var src = sockaddr_in()
        src.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, source, &src.sin_addr)
        var dst = sockaddr_in()
        dst.sin_family = sa_family_t(AF_INET)
        dst.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &dst.sin_addr)
        let bound = withUnsafePointer(to: &src) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else { close(fd); throw TestFailure("bind \(source) failed") }
        let connected = withUnsafePointer(to: &dst) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { close(fd); throw TestFailure("connect to \(port) failed: \(errno)") }
        setTimeout(5)
    }

    deinit { close(fd) }

    func setTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    private var pending = [UInt8]()

    /// Reads until the peer closes or the timeout passes. True when the connection was closed.
    func waitForClose(timeout: Double) -> Bool {
        setTimeout(timeout)
        var buf = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let n = recv(fd, &buf, buf.count, 0)
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
            pending += buf[0..<n]
        }
        return false
    }

    private func fill() -> Bool {
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &buf, buf.count, 0)
        guard n > 0 else { return false }
        pending += buf[0..<n]
        return true
    }

    private func readLine() -> String? {
        while true {
            if let i = pending.firstIndex(of: 0x0A) {
                let line = String(decoding: pending[0..<i], as: UTF8.self).trimmingCharacters(in: .init(charactersIn: "\r"))
                pending.removeFirst(i + 1)
                return line
            }
            guard fill() else { return nil }
        }
    }

    private func readBytes(_ n: Int) -> [UInt8]? {
        while pending.count < n { guard fill() else { return nil } }
        let out = Array(pending[0..<n])
        pending.removeFirst(n)
        return out
    }

    /// Reads one response (Content-Length, chunked, or until close). Nil when the connection
    /// closed or timed out before a status line.
    func readResponse(head: Bool = false) -> HTTPReply? {
        guard let status = readLine(), status.hasPrefix("HTTP/1.") else { return nil }
        let code = Int(status.split(separator: " ")[1]) ?? 0
        var headers: [(String, String)] = []
        while let line = readLine(), !line.isEmpty {
            let parts = line.split(separator: ":", maxSplits: 1)
            headers.append((parts[0].lowercased(), parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""))
        }
        var reply = HTTPReply(status: code, headers: headers, body: [])
        if head || code == 204 || code == 304 || (100..<200).contains(code) { return reply }
        if let cl = reply.header("content-length").flatMap(Int.init) {
            reply.body = readBytes(cl) ?? []
        } else if reply.header("transfer-encoding")?.lowercased() == "chunked" {
            while let sizeLine = readLine(), let size = Int(sizeLine.split(separator: ";")[0], radix: 16) {
                if size == 0 {
                    while let l = readLine(), !l.isEmpty {}
                    break
                }
                reply.body += readBytes(size) ?? []
                _ = readLine()
            }
        } else {
            while fill() {}
            reply.body = pending
            pending = []
        }
        return reply
    }

    /// Reads exactly `count` raw bytes (nil on close or timeout).
    func readRaw(count: Int) -> [UInt8]? { readBytes(count) }

    /// Sends a request and reads its response.
    func request(_ method: String = "GET", _ path: String, host: String = "example.org", headers: [String] = [], body: String = "") -> HTTPReply? {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\n"
        for h in headers { text += h + "\r\n" }
        if !body.isEmpty || method == "POST" { text += "Content-Length: \(body.utf8.count)\r\n" }
        text += "\r\n" + body
        guard send(text) else { return nil }
        return readResponse(head: method == "HEAD")
    }
}

struct HTTPReply {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    func header(_ name: String) -> String? { headers.first { $0.0 == name }?.1 }
    var text: String { String(decoding: body, as: UTF8.self) }

    /// The body parsed as a JSON object.
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:] }

    /// A request header as the demo origin's /echo saw it.
    func echoed(_ name: String) -> String? { (json["headers"] as? [String: Any])?[name] as? String }
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
func eventually(timeout: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(50_000)
    }
    return condition()
}
