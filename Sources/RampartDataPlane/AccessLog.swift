import Dispatch
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import RampartCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where access-log lines end up: standard output or a file (reopened on SIGUSR1, for logrotate).
/// Writes happen on one serial queue, off the event loops; loops hand over whole buffers a few
/// times a second.
public final class AccessLogSink: Sendable {
    private let path: String
    private let queue = DispatchQueue(label: "rampart.access-log")
    private let fd: NIOLockedValueBox<Int32>

    /// `-` for standard output, else a file opened for appending (created 0640).
    public init(path: String) throws {
        self.path = path
        let opened = try Self.open(path)
        fd = NIOLockedValueBox(opened)
    }

    private static func open(_ path: String) throws -> Int32 {
        if path == "-" { return 1 }
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw AccessLogError(message: "cannot open access log '\(path)': \(String(cString: strerror(errno)))") }
        return fd
    }

    func write(_ buffer: ByteBuffer) {
        queue.async { [fd] in
            let target = fd.withLockedValue { $0 }
            buffer.withUnsafeReadableBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let n = Glibc.write(target, bytes.baseAddress! + offset, bytes.count - offset)
                    if n <= 0 {
                        if n < 0, errno == EINTR { continue }
                        return  // a full disk loses log lines, never requests
                    }
                    offset += n
                }
            }
        }
    }

    /// Opens the file again (after logrotate moved it away).
    public func reopen() {
        guard path != "-" else { return }
        queue.async { [fd, path] in
            guard let fresh = try? Self.open(path) else { return }
            let old = fd.withLockedValue { value -> Int32 in
                let o = value
                value = fresh
                return o
            }
            close(old)
        }
    }

    /// Waits for queued writes.
    public func flush() { queue.sync {} }
}

public struct AccessLogError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// One event loop's access log: JSON lines into a buffer, handed to the sink every 100 ms. At most
/// `perSecond` lines a second per loop; the rest are counted in a `"sampled"` line, so logging never
/// becomes the bottleneck under flood (decision counters stay exact).
final class AccessLog {
    private let sink: AccessLogSink
    private let perSecond: Int
    private var buffer: ByteBuffer
    private var second: Int = 0
    private var secondPrefix = ""
    private var written = 0
    private var suppressed = 0
    private var flushScheduled = false
    private let eventLoop: any EventLoop
    /// Adds `country` and `asn` to each line when geolocation is configured (this loop's cache).
    var geo: GeoFilter?

    init(sink: AccessLogSink, perSecond: Int, eventLoop: any EventLoop) {
        self.sink = sink
        self.perSecond = perSecond
        self.eventLoop = eventLoop
        self.buffer = ByteBufferAllocator().buffer(capacity: 16 * 1024)
    }

    struct Entry {
        var site: String
        var client: IPAddress
        var method: HTTPMethod
        var target: String
        var status: Int
        var bytes: Int
        var durationMicros: Int64
        var decision: String
        var reason: String?
        var requestID: String
        var agent: String?
        var fingerprint: String?
    }

    func record(_ e: Entry) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let sec = Int(ts.tv_sec)
        if sec != second {
            if suppressed > 0 {
                buffer.writeString(#"{"time":"\#(secondPrefix).999Z","type":"sampled","suppressed":\#(suppressed)}"# + "\n")
            }
            second = sec
            secondPrefix = Self.isoSecond(sec)
            written = 0
            suppressed = 0
        }
        guard written < perSecond else {
            suppressed += 1
            return
        }
        written += 1
        let millis = Int(ts.tv_nsec) / 1_000_000
        buffer.writeString(#"{"time":"\#(secondPrefix).\#(millis < 10 ? "00" : millis < 100 ? "0" : "")\#(millis)Z","site":""#)
        Self.escape(e.site, into: &buffer)
        buffer.writeString(#"","client":"\#(e.client)""#)
        if let geo {
            let info = geo.lookup(e.client)
            if let country = info.country { buffer.writeString(#","country":"\#(country)""#) }
            if let asn = info.asn { buffer.writeString(#","asn":\#(asn)"#) }
        }
        buffer.writeString(#","method":""#)
        // Every field a client can influence is escaped (an HTTP/2 `:method` is any string until
        // the request checks refuse it, and refused requests are logged too).
        Self.escape(e.method.rawValue, into: &buffer)
        buffer.writeString(#"","path":""#)
        Self.escape(e.target, into: &buffer)
        buffer.writeString(#"","status":\#(e.status),"bytes":\#(e.bytes),"duration_ms":\#(Double(e.durationMicros / 10) / 100),"decision":""#)
        Self.escape(e.decision, into: &buffer)
        buffer.writeString("\"")
        if let reason = e.reason { Self.field("reason", reason, into: &buffer) }
        Self.field("request_id", e.requestID, into: &buffer)
        if let agent = e.agent { Self.field("agent", agent, into: &buffer) }
        if let ja4 = e.fingerprint { Self.field("ja4", ja4, into: &buffer) }
        buffer.writeString("}\n")
        if buffer.readableBytes > 64 * 1024 {
            flush()
        } else if !flushScheduled {
            flushScheduled = true
            eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(100)) { self.flush() }
        }
    }

    func flush() {
        flushScheduled = false
        guard buffer.readableBytes > 0 else { return }
        sink.write(buffer)
        buffer = ByteBufferAllocator().buffer(capacity: 16 * 1024)
    }

    static func isoSecond(_ sec: Int) -> String {
        var t = time_t(sec)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }

    /// Writes `,"name":"value"` with the value escaped (`name` is one of ours, never a client's).
    static func field(_ name: StaticString, _ value: String, into buffer: inout ByteBuffer) {
        buffer.writeStaticString(",\"")
        buffer.writeStaticString(name)
        buffer.writeStaticString("\":\"")
        escape(value, into: &buffer)
        buffer.writeStaticString("\"")
    }

    /// JSON string escaping (quotes, backslash, control characters); at most 2 KiB of the value,
    /// cut before a character, never inside one (the line stays valid UTF-8).
    static func escape(_ s: String, into buffer: inout ByteBuffer) {
        var count = 0
        for b in s.utf8 {
            count += 1
            if count > 2048, b & 0xC0 != 0x80 { break }
            switch b {
            case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
            case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
            case 0..<0x20, 0x7F:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                buffer.writeBytes([UInt8(ascii: "\\"), UInt8(ascii: "u"), 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: buffer.writeInteger(b)
            }
        }
    }
}

@available(*, unavailable)
extension AccessLog: Sendable {}
