// swift-tools-version: 6.1
// Micro-benchmarks for Rampart's decision logic (ordo-one/benchmark). Run from this folder:
//   swift package benchmark
// Kept out of the main package so `swift test` never builds the benchmark toolchain.
import Foundation
import PackageDescription

// A path dependency is named after its folder, which differs between checkouts.
let rootPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "RampartBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .executableTarget(
            name: "Guards",
            dependencies: [
                .product(name: "RampartCore", package: rootPackage),
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Benchmarks/Guards",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
