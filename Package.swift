// swift-tools-version: 6.1
import PackageDescription
import Foundation

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

/// The hot path keeps its state in loop-confined objects; dynamic exclusivity checks on their
/// fields cost a few percent of proxy throughput in release builds (measured with perf).
let hotPath: [SwiftSetting] = strict + [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

/// libmaxminddb (Debian: libmaxminddb-dev) reads operator-supplied MaxMind DB files (DB-IP Lite,
/// GeoLite2). Optional: without its header the build leaves it out and the gateway refuses an MMDB
/// path in the config with a message saying how to get it; Tor's geoip ranges still work.
let hasMaxMindDB = [
    "/usr/include/maxminddb.h", "/usr/include/x86_64-linux-gnu/maxminddb.h", "/usr/include/aarch64-linux-gnu/maxminddb.h",
    "/usr/local/include/maxminddb.h", "/opt/homebrew/include/maxminddb.h",
].contains { FileManager.default.fileExists(atPath: $0) }
let maxMindDependency: [Target.Dependency] = hasMaxMindDB ? ["CMaxMindDB"] : []
let maxMindSettings: [SwiftSetting] = hasMaxMindDB ? [.define("RAMPART_MAXMINDDB")] : []
let maxMindTargets: [Target] = hasMaxMindDB
    ? [.systemLibrary(name: "CMaxMindDB", path: "Sources/CMaxMindDB", pkgConfig: "libmaxminddb", providers: [.apt(["libmaxminddb-dev"]), .brew(["libmaxminddb"])])]
    : []

let package = Package(
    name: "rampart",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "rampart", targets: ["rampart"]),
        .executable(name: "rampart-drill", targets: ["rampart-drill"]),
        // For the micro-benchmark package in Benchmarks/.
        .library(name: "RampartCore", targets: ["RampartCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: maxMindTargets + [
        // Decision logic: config model, address math, guards' decisions. No sockets; time is passed in.
        .target(
            name: "RampartCore",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ] + maxMindDependency,
            swiftSettings: hotPath + maxMindSettings
        ),
        // Local state in SQLite: bans and incidents across restarts.
        .target(
            name: "RampartState",
            dependencies: [
                "RampartCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The NIO data plane: listeners, codecs, the guard pipeline, the origin pools.
        .target(
            name: "RampartDataPlane",
            dependencies: [
                // Storage is behind RampartCore's small protocols (GatewayStore); no database module here.
                "RampartCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPath
        ),
        // The admin listener: dashboard, JSON API, event stream, Prometheus metrics.
        .target(
            name: "RampartAdmin",
            dependencies: [
                "RampartCore",
                "RampartDataPlane",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // The fleet: many nodes sharing bans through PostgreSQL (docs/fleet.md); off the request path.
        .target(
            name: "RampartFleet",
            dependencies: [
                "RampartCore",
                "RampartDataPlane",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // A small capacity-limited origin: the demo's backend, the tests' origin, the drill's target.
        .target(
            name: "RampartDemoOrigin",
            dependencies: [
                "RampartCore",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // The command-line interface: run, check, demo.
        .executableTarget(
            name: "rampart",
            dependencies: [
                "RampartCore",
                "RampartDataPlane",
                "RampartState",
                "RampartAdmin",
                "RampartFleet",
                "RampartDemoOrigin",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                // The gateway, admin server, detection, health checks and state writer as services.
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The attack simulator: loopback-only load with simulated users and attackers.
        .target(
            name: "RampartDrill",
            dependencies: [
                "RampartCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "rampart-drill",
            dependencies: [
                "RampartCore",
                "RampartDrill",
                "RampartDemoOrigin",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "RampartCoreTests",
            dependencies: ["RampartCore"],
            exclude: ["testdata"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "RampartFleetTests",
            dependencies: ["RampartFleet", "RampartCore", "RampartDataPlane"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "RampartDataPlaneTests",
            dependencies: [
                "RampartCore",
                "RampartDataPlane",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "RampartIntegrationTests",
            dependencies: [
                "rampart",
                "RampartState",
                "rampart-drill",
                "RampartDrill",
                "RampartCore",
                "RampartDemoOrigin",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
    ]
)
