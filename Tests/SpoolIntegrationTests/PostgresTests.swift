import Foundation
import Glibc
import Testing

/// The private PostgreSQL server `scripts/test` starts (`SPOOL_TEST_POSTGRES_URL`), reached with
/// the real `psql` client.
enum PostgresServer {
    static let url = ProcessInfo.processInfo.environment["SPOOL_TEST_POSTGRES_URL"]

    /// The server's socket folder (the URL's `?host=`).
    static var socketFolder: String? {
        url.flatMap { URLComponents(string: $0)?.queryItems?.first { $0.name == "host" }?.value }
    }

    /// Creates an empty database; returns its URL.
    static func freshDatabase() throws -> String {
        let url = try #require(url, "SPOOL_TEST_POSTGRES_URL is not set")
        let folder = try #require(socketFolder)
        let name = "spool_it_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let result = psql(url, "CREATE DATABASE \(name)")
        guard result.status == 0 else { throw HarnessError("psql: \(result.output)") }
        return "postgres://postgres@/\(name)?host=\(folder)"
    }

    /// Runs one SQL command with `psql` and returns its unaligned output.
    static func psql(_ url: String, _ sql: String) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["psql", url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        guard (try? process.run()) != nil else { return (127, "cannot start psql") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

extension IntegrationTests {
    /// `spool serve` with its ledger in PostgreSQL (`[ledger] url`, `SPOOL_LEDGER_URL`).
    @Suite(.serialized, .enabled(if: PostgresServer.url != nil, "SPOOL_TEST_POSTGRES_URL is not set (scripts/test starts a server and sets it)"))
    struct Postgres {
        @Test("[ledger] url: drops are processed with the ledger in PostgreSQL, the CLI reads it, and no SQLite file is made",
              .timeLimit(.minutes(2)))
        func serveWithPostgres() async throws {
            let url = try PostgresServer.freshDatabase()
            let root = try SpoolRoot(config: config(model: "sha256") + "\n[ledger]\nurl = \"\(url)\"\n")
            _ = try root.serve()
            try await root.warmUp()
            for i in 0..<20 { try Files.write(root.incoming + "/f\(i).txt", "payload \(i)\n") }
            try await root.waitForCount("outputs", toReach: 21, timeout: .seconds(60)) { Files.files(under: root.outputs).count }
            let status = try await root.queueStatus()
            #expect(status.Succeeded == 21 && status.Queued == 0 && status.Running == 0, "\(status)")
            #expect(!Files.exists(root.path + "/.spool/ledger.sqlite"), "the ledger is in PostgreSQL")
            let rows = PostgresServer.psql(url, "SELECT count(*) FROM requests WHERE state = 'succeeded'")
            #expect(rows.output == "21", "\(rows.output)")
            let owner = PostgresServer.psql(url, "SELECT count(*) FROM requests WHERE owner IS NOT NULL")
            #expect(owner.output == "0")
            #expect(try root.events().filter { $0.invocationStatus == "Completed" }.count == 21)
        }

        @Test("a server that is not there, or a database that does not exist: serve stops at once with one line naming the server, the database and the reason",
              .timeLimit(.minutes(1)))
        func clearStartErrors() async throws {
            let folder = try #require(PostgresServer.socketFolder)
            let root = try SpoolRoot(config: config(model: "echo") + "\n[ledger]\nurl = \"postgres://spool@/queue?host=/nonexistent\"\n")
            let missing = try await root.run("serve", timeout: .seconds(30))
            #expect(missing.status != 0)
            #expect(missing.stderr.contains("/nonexistent/.s.PGSQL.5432") && missing.stderr.contains("queue"), "\(missing.stderr)")
            #expect(missing.stderr.split(separator: "\n").count == 1, "one line: \(missing.stderr)")
            // SPOOL_LEDGER_URL wins over the file.
            let noDatabase = try await root.run(
                "serve", timeout: .seconds(30), environment: ["SPOOL_LEDGER_URL": "postgres://postgres@/nosuchdb?host=\(folder)"])
            #expect(noDatabase.status != 0)
            #expect(noDatabase.stderr.contains("nosuchdb") && noDatabase.stderr.contains("does not exist"), "\(noDatabase.stderr)")
        }
    }
}
