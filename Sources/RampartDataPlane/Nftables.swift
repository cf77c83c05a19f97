import Foundation
import RampartCore

#if canImport(Glibc)
import Glibc
#endif

/// Runs nftables JSON commands: through libnftables loaded at run time (`dlopen`, so the build
/// needs no nftables headers and a machine without nftables builds and runs unchanged), else
/// through the `nft` binary (`nft -j -f -`). Used only from the kernel-ban worker thread.
protocol NftablesRunner: AnyObject {
    /// What runs the commands, for messages (`libnftables.so.1` or the binary's path).
    var name: String { get }
    /// Runs one JSON document as one transaction; the error text on failure.
    func run(_ json: String) -> String?
}

/// Finds a way to talk to nftables: the library, else the binary; nil when neither is installed.
func openNftables() -> (any NftablesRunner)? {
    if let lib = LibNftables() { return lib }
    let binaries: [String] = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/bin/nft"]
    for path in binaries where access(path, X_OK) == 0 {
        return NftBinary(path: path)
    }
    return nil
}

/// libnftables through the eight functions of its public API.
final class LibNftables: NftablesRunner {
    private typealias CtxNew = @convention(c) (UInt32) -> OpaquePointer?
    private typealias SetFlags = @convention(c) (OpaquePointer?, UInt32) -> Void
    private typealias Buffer = @convention(c) (OpaquePointer?) -> Int32
    private typealias RunBuffer = @convention(c) (OpaquePointer?, UnsafePointer<CChar>?) -> Int32
    private typealias GetBuffer = @convention(c) (OpaquePointer?) -> UnsafePointer<CChar>?
    private typealias Free = @convention(c) (OpaquePointer?) -> Void

    /// `NFT_CTX_OUTPUT_JSON`: output in JSON, and input parsed as JSON.
    private static let outputJSON: UInt32 = 1 << 4

    private let handle: UnsafeMutableRawPointer
    private let ctx: OpaquePointer
    private let runBuffer: RunBuffer
    private let getError: GetBuffer
    private let getOutput: GetBuffer
    private let free: Free
    let name = "libnftables.so.1"

    init?() {
        guard let handle = dlopen("libnftables.so.1", RTLD_NOW | RTLD_LOCAL) else { return nil }
        func sym<T>(_ name: String, _: T.Type) -> T? {
            dlsym(handle, name).map { unsafeBitCast($0, to: T.self) }
        }
        guard let new = sym("nft_ctx_new", CtxNew.self), let setFlags = sym("nft_ctx_output_set_flags", SetFlags.self),
            let bufferOutput = sym("nft_ctx_buffer_output", Buffer.self), let bufferError = sym("nft_ctx_buffer_error", Buffer.self),
            let run = sym("nft_run_cmd_from_buffer", RunBuffer.self), let getOutput = sym("nft_ctx_get_output_buffer", GetBuffer.self),
            let getError = sym("nft_ctx_get_error_buffer", GetBuffer.self), let free = sym("nft_ctx_free", Free.self),
            let ctx = new(0)
        else {
            dlclose(handle)
            return nil
        }
        setFlags(ctx, Self.outputJSON)
        _ = bufferOutput(ctx)
        _ = bufferError(ctx)
        self.handle = handle
        self.ctx = ctx
        self.runBuffer = run
        self.getError = getError
        self.getOutput = getOutput
        self.free = free
    }

    deinit {
        free(ctx)
        dlclose(handle)
    }

    func run(_ json: String) -> String? {
        let status = json.withCString { runBuffer(ctx, $0) }
        // Reading the buffers also resets them for the next command.
        let error = getError(ctx).map { String(cString: $0) } ?? ""
        _ = getOutput(ctx)
        if status == 0 { return nil }
        return error.isEmpty ? "nft_run_cmd_from_buffer returned \(status)" : error.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// The `nft` binary, fed JSON on standard input.
final class NftBinary: NftablesRunner {
    let name: String
    init(path: String) { name = path }

    func run(_ json: String) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: name)
        process.arguments = ["-j", "-f", "-"]
        let input = Pipe()
        let errors = Pipe()
        process.standardInput = input
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return "cannot run \(name): \(error)"
        }
        input.fileHandleForWriting.write(Data(json.utf8))
        try? input.fileHandleForWriting.close()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus == 0 { return nil }
        return text.isEmpty ? "\(name) exited with status \(process.terminationStatus)" : text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// The JSON documents for Rampart's table: pure text building, testable without a kernel.
enum NftablesDocument {
    static let setV4 = "banned_v4"
    static let setV6 = "banned_v6"
    static let chain = "drop_banned"

    /// One ban to load: the source and the seconds it has left.
    typealias Element = (address: IPAddress, seconds: Int)

    /// The whole table, replaced in one transaction: any old table of that name is deleted, then
    /// the sets, the chain, the rules and `elements` are added.
    static func table(_ config: KernelBanConfig, ports: [Int], capacity: Int, elements: [Element]) -> String {
        let t = config.table
        let family = #""family":"inet","table":"\#(t)""#
        var out = #"{"nftables":["#
        out += #"{"add":{"table":{"family":"inet","name":"\#(t)"}}},"#
        out += #"{"delete":{"table":{"family":"inet","name":"\#(t)"}}},"#
        out += #"{"add":{"table":{"family":"inet","name":"\#(t)"}}},"#
        for (name, type) in [(setV4, "ipv4_addr"), (setV6, "ipv6_addr")] {
            out += #"{"add":{"set":{\#(family),"name":"\#(name)","type":"\#(type)","flags":["timeout"],"size":\#(capacity)}}},"#
        }
        let (hook, priority) = config.hook == .prerouting ? ("prerouting", -300) : ("input", -150)
        out += #"{"add":{"chain":{\#(family),"name":"\#(chain)","type":"filter","hook":"\#(hook)","prio":\#(priority),"policy":"accept"}}},"#
        let portMatch: String
        if config.ports == .listeners, !ports.isEmpty {
            let list = Array(Set(ports)).sorted().map(String.init).joined(separator: ",")
            portMatch = #"{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":{"set":[\#(list)]}}},"#
        } else {
            portMatch = ""
        }
        for (proto, set) in [("ip", setV4), ("ip6", setV6)] {
            out += #"{"add":{"rule":{\#(family),"chain":"\#(chain)","expr":["#
            out += #"{"match":{"op":"==","left":{"payload":{"protocol":"\#(proto)","field":"saddr"}},"right":"@\#(set)"}},"#
            out += portMatch
            out += #"{"counter":{"packets":0,"bytes":0}},{"drop":null}]}}},"#
        }
        appendElements(elements, config: config, to: &out)
        out.removeLast()  // the last comma
        out += "]}"
        return out
    }

    /// One batch of changes. An addition is written as add (1 s), delete, add (its timeout): the
    /// first add makes the delete safe when the element is absent, the delete lets the new timeout
    /// replace an old one. A removal is add (1 s) then delete, so removing an element that already
    /// expired does not fail the whole transaction.
    static func batch(_ ops: [KernelBanOp], config: KernelBanConfig) -> String {
        var out = #"{"nftables":["#
        for op in ops {
            let (address, seconds) = switch op {
            case .add(let a, let s): (a, Optional(s))
            case .remove(let a): (a, Optional<Int>.none)
            }
            let set = address.isIPv4 ? setV4 : setV6
            let head = #"{"family":"inet","table":"\#(config.table)","name":"\#(set)","elem":["#
            out += #"{"add":{"element":\#(head){"elem":{"val":"\#(address)","timeout":1}}]}}},"#
            out += #"{"delete":{"element":\#(head)"\#(address)"]}}},"#
            if let seconds {
                out += #"{"add":{"element":\#(head){"elem":{"val":"\#(address)","timeout":\#(max(1, seconds))}}]}}},"#
            }
        }
        out.removeLast()
        out += "]}"
        return out
    }

    /// Deletes the table.
    static func deleteTable(_ config: KernelBanConfig) -> String {
        #"{"nftables":[{"add":{"table":{"family":"inet","name":"\#(config.table)"}}},{"delete":{"table":{"family":"inet","name":"\#(config.table)"}}}]}"#
    }

    private static func appendElements(_ elements: [Element], config: KernelBanConfig, to out: inout String) {
        for (set, v4) in [(setV4, true), (setV6, false)] {
            let chosen = elements.filter { $0.address.isIPv4 == v4 }
            guard !chosen.isEmpty else { continue }
            out += #"{"add":{"element":{"family":"inet","table":"\#(config.table)","name":"\#(set)","elem":["#
            for e in chosen { out += #"{"elem":{"val":"\#(e.address)","timeout":\#(max(1, e.seconds))}},"# }
            out.removeLast()
            out += "]}}},"
        }
    }
}
