import Foundation
import SpoolTestSupport

/// Runs `body` with a fresh, empty directory (SpoolTestSupport's) that is removed afterwards,
/// whatever happens; the ledger tests take it as a URL.
func withTemporaryDirectory<T>(_ body: (URL) async throws -> T) async throws -> T {
    let path = try makeTemporaryDirectory(prefix: "spool-ledger-tests")
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(URL(fileURLWithPath: path, isDirectory: true))
}
