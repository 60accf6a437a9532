import Foundation
import GRDB
import SpoolCore
import SpoolLedger
import Testing

/// A row the lifecycle could never produce, as column overrides of a valid queued row.
struct ImpossibleRow: Sendable, CustomTestStringConvertible {
    let testDescription: String
    let columns: [String: DatabaseValue]

    init(_ description: String, _ columns: [String: DatabaseValue]) {
        self.testDescription = description
        self.columns = columns
    }

    static let all: [ImpossibleRow] = [
        ImpossibleRow("unknown state", ["state": "bogus".databaseValue]),
        ImpossibleRow("unknown failure code", ["state": "failed".databaseValue, "finished_at": 1.databaseValue, "failure_code": "Oops".databaseValue]),
        ImpossibleRow("unknown source", ["source": "email".databaseValue]),
        ImpossibleRow("running without owner", ["state": "running".databaseValue]),
        ImpossibleRow("queued with an owner", ["owner": "w".databaseValue]),
        ImpossibleRow("finished without finish time", ["state": "succeeded".databaseValue]),
        ImpossibleRow("queued with a finish time", ["finished_at": 1.databaseValue]),
        ImpossibleRow("failed without failure code", ["state": "failed".databaseValue, "finished_at": 1.databaseValue]),
        ImpossibleRow("succeeded with a failure code", ["state": "succeeded".databaseValue, "finished_at": 1.databaseValue, "failure_code": "ModelError".databaseValue]),
        ImpossibleRow("attempt history not a JSON array", ["attempt_errors": "{}".databaseValue]),
        ImpossibleRow("notified neither 0 nor 1", ["notified": 2.databaseValue]),
        ImpossibleRow("no attempts allowed", ["max_attempts": 0.databaseValue]),
    ]
}

/// The schema's invariants, checked by writing raw rows with GRDB next to a ledger.
@Suite struct SQLiteLedgerSchemaTests {
    /// Inserts a valid queued row with `columns` replacing its values.
    static func insert(_ db: Database, id: String, _ columns: [String: DatabaseValue] = [:]) throws {
        let text: [String: String] = [
            "id": id, "endpoint": "default", "source": "drop", "input_path": "in/\(id)", "claim_token": "token-\(id)",
            "state": "queued", "output_location": "outputs/\(id).out", "failure_location": "errors/\(id).error.json",
        ]
        let integers: [String: Int] = [
            "payload_bytes": 1, "ttl_seconds": 60, "timeout_seconds": 60, "max_attempts": 1, "received_at": 0,
        ]
        let row = text.mapValues(\.databaseValue)
            .merging(integers.mapValues(\.databaseValue)) { $1 }
            .merging(columns) { $1 }
        let names = row.keys.sorted()
        try db.execute(
            sql: "INSERT INTO requests (\(names.joined(separator: ", "))) VALUES (\(names.map { _ in "?" }.joined(separator: ", ")))",
            arguments: StatementArguments(names.map { row[$0]! }))
    }

    /// Runs `body` with a migrated ledger file, opened both as a ledger and as a plain database.
    static func withLedgerFile(_ body: (SQLiteLedger, DatabaseQueue) async throws -> Void) async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("ledger.sqlite").path
            let ledger = try SQLiteLedger(path: path)
            try await body(ledger, try DatabaseQueue(path: path))
        }
    }

    @Test(arguments: ImpossibleRow.all)
    func schemaRefusesImpossibleRow(_ impossible: ImpossibleRow) async throws {
        try await Self.withLedgerFile { _, database in
            // The valid row the impossible one is made from is accepted…
            try await database.write { try Self.insert($0, id: "valid") }
            // …and the impossible one is refused by a constraint.
            await #expect {
                try await database.write { try Self.insert($0, id: "impossible", impossible.columns) }
            } throws: { error in
                (error as? DatabaseError)?.resultCode == .SQLITE_CONSTRAINT
            }
        }
    }

    @Test func schemaAcceptsEveryStateAndFailureCode() async throws {
        try await Self.withLedgerFile { ledger, database in
            for state in RequestState.allCases {
                var columns: [String: DatabaseValue] = ["state": state.rawValue.databaseValue]
                if state.isTerminal { columns["finished_at"] = 1.databaseValue }
                if state == .running { columns["owner"] = "w".databaseValue }
                if [.failed, .expired, .cancelled].contains(state) { columns["failure_code"] = "ModelError".databaseValue }
                try await database.write { [columns] in try Self.insert($0, id: state.rawValue, columns) }
                #expect(try await ledger.request(id: state.rawValue)?.state == state)
            }
            for code in FailureCode.allCases {
                let columns: [String: DatabaseValue] = [
                    "state": "failed".databaseValue, "finished_at": 1.databaseValue, "failure_code": code.rawValue.databaseValue,
                ]
                try await database.write { try Self.insert($0, id: code.rawValue, columns) }
                #expect(try await ledger.request(id: code.rawValue)?.failureCode == code)
            }
        }
    }

    @Test func fileIsInWALModeWithOneRecordPerMigration() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("nested/deeper/ledger.sqlite").path
            _ = try SQLiteLedger(path: path)
            _ = try SQLiteLedger(path: path)
            let database = try DatabaseQueue(path: path)
            let journalMode = try await database.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }
            let migrations = try await database.read { try String.fetchAll($0, sql: "SELECT identifier FROM grdb_migrations") }
            #expect(journalMode == "wal")
            #expect(migrations == ["v1", "v2", "v3", "v4"])
        }
    }
}
