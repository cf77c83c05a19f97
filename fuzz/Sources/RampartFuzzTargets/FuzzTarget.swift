#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One fuzz target: the name its binary is called by, the property it asserts, and the function
/// libFuzzer calls with each input.
public struct FuzzTarget: Sendable {
    /// The binary's name (`fuzz/.build/fuzzers/NAME`) and the corpus folder's (`fuzz/corpus/NAME`).
    public let name: String
    /// The property, in one sentence, for `-help` and the docs.
    public let property: String
    /// Runs one input; a property violation ends the process through ``FuzzCheck/require(_:_:file:line:)``.
    public let run: @Sendable ([UInt8]) -> Void
}

/// The registry: every target, in the order `run.sh` runs them.
public enum FuzzTargets {
    /// All targets.
    public static let all: [FuzzTarget] = [
        HTTP1Framing.target,
        ForwardRewrite.target,
        ProxyProtocolTarget.target,
        ClientHelloTarget.target,
        ClearanceTarget.target,
        ConfigTarget.target,
        ReplayLogTarget.target,
    ]

    /// The target called `name`, if any.
    public static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}

/// Property checks that end the process with a message libFuzzer records with the crashing input.
public enum FuzzCheck {
    /// Ends the process (a trap libFuzzer reports as a crash and saves the input for) when
    /// `condition` is false. Unlike `assert`, it is checked in every build configuration.
    public static func require(
        _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line
    ) {
        guard !condition() else { return }
        fatalError("PROPERTY VIOLATED: \(message())", file: file, line: line)
    }
}

/// The target this process runs, chosen once by ``LLVMFuzzerInitialize``.
nonisolated(unsafe) private var selectedTarget: FuzzTarget? = nil

/// Picks the target from the binary's name (`fuzz/.build/fuzzers/client-hello` is a link to the
/// one fuzzer binary) or, failing that, from the `RAMPART_FUZZ_TARGET` environment variable.
/// libFuzzer calls it once, before any input.
@_cdecl("LLVMFuzzerInitialize")
public func rampartFuzzInitialize(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> CInt {
    var candidates: [String] = []
    if argc.pointee > 0, let args = argv.pointee, let first = args[0] {
        let path = String(cString: first)
        candidates.append(String(path.split(separator: "/").last ?? Substring(path)))
    }
    if let env = getenv("RAMPART_FUZZ_TARGET") { candidates.append(String(cString: env)) }
    for name in candidates {
        if let target = FuzzTargets.named(name) {
            selectedTarget = target
            return 0
        }
    }
    var message = "rampart-fuzz: no target named \(candidates); run it as one of (or set RAMPART_FUZZ_TARGET to):\n"
    for target in FuzzTargets.all { message += "  \(target.name): \(target.property)\n" }
    _ = message.withCString { write(2, $0, strlen($0)) }
    exit(2)
}

/// libFuzzer's entry point: copies the input and hands it to the selected target.
@_cdecl("LLVMFuzzerTestOneInput")
public func rampartFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let target = selectedTarget else { return 0 }
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    target.run(bytes)
    return 0
}
