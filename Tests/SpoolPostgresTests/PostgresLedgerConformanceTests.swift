import Foundation
import Logging
import PostgresNIO
import SpoolCore
import SpoolLedgerConformance
import SpoolPostgres
import Testing

/// The private server `scripts/test` starts (`scripts/postgres`), and a fresh database on it.
enum TestServer {
    /// `SPOOL_TEST_POSTGRES_URL`: the server's `postgres` database, which `scripts/test` exports.
    static let url = ProcessInfo.processInfo.environment["SPOOL_TEST_POSTGRES_URL"]

    /// Creates an empty database and returns its URL.
    static func freshDatabase() async throws -> String {
        let admin = try LedgerURL(try #require(url))
        let name = "spool_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let configuration = PostgresConnection.Configuration(
            unixSocketPath: "\(admin.host)/.s.PGSQL.\(admin.port)", username: admin.user, password: admin.password, database: admin.database)
        let logger = Logger(label: "spool.tests")
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        do {
            try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
        return "postgres://\(admin.user)@/\(name)?host=\(admin.host)"
    }

    /// Runs `sql` in the database at `url` (a test's own change behind the ledger's back).
    static func execute(_ sql: String, in url: String) async throws {
        let target = try LedgerURL(url)
        let configuration = PostgresConnection.Configuration(
            unixSocketPath: "\(target.host)/.s.PGSQL.\(target.port)", username: target.user, password: target.password, database: target.database)
        let logger = Logger(label: "spool.tests")
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 2, logger: logger)
        do {
            try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }
}

/// The ledger conformance suite on a real PostgreSQL server, one fresh database per check.
@Suite(.enabled(if: TestServer.url != nil, "SPOOL_TEST_POSTGRES_URL is not set (scripts/test starts a server and sets it)"))
struct PostgresLedgerConformanceTests {
    @Test(arguments: LedgerConformance.checks)
    func conformance(_ check: LedgerCheck) async throws {
        let url = try await TestServer.freshDatabase()
        try await check.run(LedgerConformance { try await PostgresLedger.open(url: url) })
    }
}
