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
    ],
    targets: [
        // The domain: requests, states, configuration, and the protocols everything else implements.
        .target(name: "SpoolCore"),
        // The system: SHA-256 from libcrypto (it uses the CPU's SHA extensions) and Linux calls Glibc hides.
        .systemLibrary(name: "CSpoolSystem", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .target(
            name: "SpoolLedger",
            dependencies: ["SpoolCore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .target(name: "SpoolIntake", dependencies: ["SpoolCore"]),
        .target(
            name: "SpoolExecutors",
            dependencies: [
                "SpoolCore", "CSpoolSystem",
                .product(name: "Subprocess", package: "swift-subprocess"),
            ]
        ),
        .target(
            name: "SpoolDaemon",
            dependencies: [
                "SpoolCore", "SpoolLedger", "SpoolIntake", "SpoolExecutors",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "spool",
            dependencies: [
                "SpoolCore", "SpoolDaemon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "SpoolCoreTests", dependencies: ["SpoolCore"]),
        .testTarget(
            name: "SpoolLedgerTests",
            dependencies: ["SpoolLedger", "SpoolCore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(name: "SpoolIntakeTests", dependencies: ["SpoolIntake", "SpoolCore"]),
        .testTarget(name: "SpoolExecutorsTests", dependencies: ["SpoolExecutors", "SpoolCore"]),
        .testTarget(
            name: "SpoolIntegrationTests",
            dependencies: ["SpoolDaemon", "SpoolCore", "SpoolLedger"]
        ),
    ]
)
