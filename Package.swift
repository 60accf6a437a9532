// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "spool",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "spool", targets: ["spool"]),
        .library(name: "SpoolDaemon", targets: ["SpoolDaemon"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio", exact: "1.33.2"),
    ],
    targets: [
        // The domain: requests, states, configuration, and the protocols everything else implements.
        .target(name: "SpoolCore"),
        // The system: SHA-256 from libcrypto (it uses the CPU's SHA extensions) and Linux calls Glibc hides.
        .systemLibrary(name: "CSpoolSystem", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev", "zlib1g-dev"])]),
        // The one layer over Linux calls: EINTR retried and errno reported with the call and the
        // path in one place, descriptor I/O through apple/swift-system.
        .target(
            name: "SpoolSystem",
            dependencies: ["CSpoolSystem", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .target(
            name: "SpoolLedger",
            dependencies: [
                "SpoolCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ]
        ),
        // The same ledger on PostgreSQL, for several hosts sharing one root (`[ledger] url`).
        .target(
            name: "SpoolPostgres",
            dependencies: [
                "SpoolCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The spool folders' protocol: claims (token folders, the folder pool, payload files,
        // sidecars), outputs (made durable, put in place; the trash whose files become outputs),
        // error markers and the event log.
        .target(name: "SpoolStore", dependencies: ["SpoolCore", "SpoolSystem", "CSpoolSystem"]),
        // Finding dropped files: inotify, scans and polling. It only watches; claiming is the store's.
        .target(name: "SpoolIntake", dependencies: ["SpoolCore", "SpoolSystem"]),
        .target(
            name: "SpoolExecutors",
            dependencies: [
                "SpoolCore", "SpoolSystem", "CSpoolSystem",
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .target(
            name: "SpoolDaemon",
            dependencies: [
                "SpoolCore", "SpoolSystem", "SpoolLedger", "SpoolPostgres", "SpoolStore", "SpoolIntake", "SpoolExecutors", "CSpoolSystem",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // The SageMaker-compatible HTTP API (`spool serve --listen`).
        .target(
            name: "SpoolHTTP",
            dependencies: [
                "SpoolCore", "SpoolSystem", "SpoolDaemon", "CSpoolSystem",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "spool",
            dependencies: [
                "SpoolCore", "SpoolSystem", "SpoolStore", "SpoolDaemon", "SpoolExecutors", "SpoolHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // The Swift runtime and Foundation linked in: every `spool` command starts ~8 ms sooner
            // (no symbols looked up across a dozen shared libraries at each start). lld, from the
            // toolchain, finds archive members in any order; Foundation's own archives are named
            // because the modules were compiled against the shared ones, whose links name fewer.
            linkerSettings: [
                .unsafeFlags([
                    "-static-stdlib", "-use-ld=lld",
                    "-l_FoundationICU", "-lCoreFoundation", "-l_FoundationCollections", "-l_FoundationCShims",
                ], .when(platforms: [.linux]))
            ]
        ),
        .testTarget(name: "SpoolCoreTests", dependencies: ["SpoolCore"]),
        // The ledger conformance suite: every driver's tests run it.
        .target(name: "SpoolLedgerConformance", dependencies: ["SpoolCore"], path: "Tests/SpoolLedgerConformance"),
        // What test targets share: ports for the servers tests start, a clock tests move, file helpers.
        .target(name: "SpoolTestSupport", dependencies: ["SpoolCore", "SpoolSystem"], path: "Tests/SpoolTestSupport"),
        .testTarget(
            name: "SpoolLedgerTests",
            dependencies: [
                "SpoolLedger", "SpoolCore", "SpoolLedgerConformance", "SpoolTestSupport", .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "SpoolPostgresTests",
            dependencies: [
                "SpoolPostgres", "SpoolCore", "SpoolLedgerConformance",
                .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "SpoolDaemonTests",
            dependencies: [
                "SpoolDaemon", "SpoolCore", "SpoolLedger", "SpoolLedgerConformance", "SpoolSystem", "SpoolTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "SpoolStoreTests", dependencies: ["SpoolStore", "SpoolCore", "SpoolSystem", "SpoolTestSupport"]),
        .testTarget(name: "SpoolIntakeTests", dependencies: ["SpoolIntake", "SpoolCore", "SpoolSystem", "SpoolTestSupport"]),
        .testTarget(name: "SpoolExecutorsTests", dependencies: ["SpoolExecutors", "SpoolCore", "SpoolTestSupport"]),
        .testTarget(
            name: "SpoolHTTPTests",
            dependencies: [
                "SpoolHTTP", "SpoolDaemon", "SpoolCore", "SpoolTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "SpoolIntegrationTests",
            dependencies: ["SpoolDaemon", "SpoolCore", "SpoolLedger", "SpoolStore", "SpoolIntake", "CSpoolSystem", "SpoolTestSupport"]
        ),
    ]
)
