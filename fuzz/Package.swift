// swift-tools-version: 6.1
// Coverage-guided fuzz targets (libFuzzer) over Rampart's decision code. Build and run from the
// repository root with `fuzz/run.sh [SECONDS] [TARGET...]`; docs/fuzzing.md explains the rest.
//
// The package holds one library target and no executable: `run.sh` builds it with
// `--sanitize fuzzer --sanitize address` (coverage and ASan instrumentation, no linking) and links
// its objects, with those of its dependencies, into one libFuzzer binary; each target is that
// binary under the target's name (the entry point picks the target from argv[0]).
import Foundation
import PackageDescription

// A path dependency is named after its folder, which differs between checkouts.
let rootPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "RampartFuzz",
    platforms: [.macOS(.v14)],
    products: [
        // The objects `run.sh` links into the fuzzer binary: this target and everything it uses.
        .library(name: "RampartFuzz", type: .static, targets: ["RampartFuzzTargets"])
    ],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .target(
            name: "RampartFuzzTargets",
            dependencies: [
                .product(name: "RampartCore", package: rootPackage),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        )
    ]
)
