import Foundation
import GRDB
import SpoolCore
import SpoolLedger
import SpoolLedgerConformance
import Testing

/// What the SQLite ledger offers beyond the `Ledger` protocol, and how it behaves as a file.
@Suite struct SQLiteLedgerTests {
    typealias Fixtures = LedgerConformance

    static func withLedger(_ body: (SQLiteLedger, String) async throws -> Void) async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("ledger.sqlite").path
            try await body(try SQLiteLedger(path: path), path)
        }
    }

    @Test func attemptErrorsKeepEveryFailedAttempt() async throws {
        try await Self.withLedger { ledger, _ in
            try await Fixtures.admit([Fixtures.request("r", maxAttempts: 2)], to: ledger)
            #expect(try await ledger.attemptErrors(id: "r") == [])
            let crash = Failure(.modelError, "The model crashed.", evidence: ModelEvidence(signal: 9), retryable: true)
            let timeout = Failure(.invocationTimeout, "The model took longer than 900 s.", retryable: true)

            _ = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Fixtures.at(1))
            _ = try await ledger.finish(id: "r", owner: "w", result: .failed(crash), now: Fixtures.at(2))
            _ = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Fixtures.at(3))
            _ = try await ledger.finish(id: "r", owner: "w", result: .failed(timeout), now: Fixtures.at(4))

            #expect(try await ledger.request(id: "r")?.state == .failed)
            #expect(try await ledger.attemptErrors(id: "r") == [
                AttemptError(attempt: 1, at: Fixtures.at(2), code: .modelError, reason: "The model crashed.",
                             evidence: ModelEvidence(signal: 9), requeued: true),
                AttemptError(attempt: 2, at: Fixtures.at(4), code: .invocationTimeout,
                             reason: "The model took longer than 900 s.", requeued: false),
            ])
            #expect(try await ledger.attemptErrors(id: "unknown") == nil)
        }
    }

    @Test func deleteRemovesOnlyFinishedRequests() async throws {
        try await Self.withLedger { ledger, _ in
            try await Fixtures.admit([Fixtures.request("queued"), Fixtures.request("running"), Fixtures.request("done")], to: ledger)
            _ = try await ledger.cancel(id: "queued", now: Fixtures.at(1))
            _ = try await ledger.admit(Fixtures.request("queued-too"), initialFailure: nil)
            _ = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Fixtures.at(2))
            _ = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Fixtures.at(2))
            _ = try await ledger.finish(id: "done", owner: "w", result: .succeeded, now: Fixtures.at(3))

            let deleted = try await ledger.delete(ids: ["queued", "running", "done", "queued-too", "unknown"])

            #expect(deleted == 2)
            #expect(try await ledger.list(LedgerQuery()).map(\.id) == ["queued-too", "running"])
            #expect(try await ledger.delete(ids: []) == 0)
        }
    }

    @Test func requestsSurviveReopening() async throws {
        try await Self.withLedger { ledger, path in
            let stored = try await ledger.admit(Fixtures.request("r"), initialFailure: nil)
            let reopened = try SQLiteLedger(path: path)
            #expect(try await reopened.request(id: "r") == stored)
        }
    }

    /// Several processes starting at once on a new spool race to create the schema; the
    /// losers find it created. Thirty new files, six openers each.
    @Test func processesOpeningANewFileTogetherAllSucceed() async throws {
        try await withTemporaryDirectory { directory in
            for round in 0..<30 {
                let path = directory.appendingPathComponent("ledger-\(round).sqlite").path
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<6 {
                        group.addTask { _ = try SQLiteLedger(path: path) }
                    }
                    try await group.waitForAll()
                }
                #expect(try await SQLiteLedger(path: path).queueStats().isEmpty)
            }
        }
    }

    @Test func aLockedFileIsAStorageErrorWithSQLiteBusy() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("ledger.sqlite").path
            let ledger = try SQLiteLedger(path: path, busyTimeout: 0.1)
            _ = try await ledger.admit(Fixtures.request("r"), initialFailure: nil)
            // Given another process holding the write lock…
            var configuration = Configuration()
            configuration.allowsUnsafeTransactions = true
            let other = try DatabaseQueue(path: path, configuration: configuration)
            try await other.writeWithoutTransaction { try $0.execute(sql: "BEGIN IMMEDIATE") }

            // …writes wait out the busy timeout and fail with SQLITE_BUSY; reads go on (WAL).
            await #expect { try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Fixtures.t0) } throws: { error in
                guard case .storage(let failure, _)? = error as? LedgerError else { return false }
                return failure == .busy
            }
            #expect(try await ledger.request(id: "r")?.state == .queued)

            try await other.writeWithoutTransaction { try $0.execute(sql: "COMMIT") }
            #expect(try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Fixtures.t0).claimed?.id == "r")
        }
    }

    @Test func anUnopenableFileIsAStorageError() async throws {
        try await withTemporaryDirectory { directory in
            let file = directory.appendingPathComponent("not-a-directory")
            try Data("x".utf8).write(to: file)
            #expect { try SQLiteLedger(path: file.appendingPathComponent("ledger.sqlite").path) } throws: { error in
                guard case .storage? = error as? LedgerError else { return false }
                return true
            }
        }
    }
}
