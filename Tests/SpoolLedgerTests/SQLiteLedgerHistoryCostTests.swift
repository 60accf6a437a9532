import Foundation
import GRDB
import SpoolCore
import SpoolLedger
import SpoolLedgerConformance
import Testing

/// The paths every request, `/ping`, the scaler and `spool stats` take cost the same with a long
/// history of finished requests as with none. Cost is counted in SQLite virtual-machine steps
/// (`StatementMeter`), which grow with the rows a statement visits, not with timing.
@Suite struct SQLiteLedgerHistoryCostTests {
    static let history = 20_000

    /// Inserts `count` succeeded requests of `endpoint` directly, as weeks of traffic leave them.
    static func insertFinished(_ count: Int, endpoint: String, prefix: String, into db: Database) throws {
        try db.execute(sql: """
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
            INSERT INTO requests (
                id, endpoint, source, input_path, claim_token, payload_bytes, ttl_seconds,
                timeout_seconds, max_attempts, state, received_at, started_at, finished_at,
                attempts, output_location, failure_location, notified)
            SELECT ? || i, ?, 'drop', 'old/' || i, ? || '-token-' || i, 1024, 3600, 900, 1,
                'succeeded', i * 10, i * 10 + 1, i * 10 + 2, 1, 'outputs/old/' || i || '.out',
                'errors/old/' || i || '.error.json', 1
            FROM n
            """, arguments: [count, prefix, endpoint, prefix])
    }

    /// What each path costs now, in steps.
    static func costs(_ ledger: SQLiteLedger, _ meter: StatementMeter, round: Int) async throws -> [String: Int] {
        func cost(_ body: () async throws -> Void) async throws -> Int {
            meter.reset()
            try await body()
            return meter.stepsTaken
        }
        var costs: [String: Int] = [:]
        let now = LedgerConformance.at(100)
        costs["queueStats (/ping, max_queued, scaler, status)"] = try await cost { _ = try await ledger.queueStats() }
        costs["admit"] = try await cost {
            _ = try await ledger.admit(LedgerConformance.request("new-\(round)", receivedAt: now), initialFailure: nil)
        }
        costs["claimNext"] = try await cost {
            _ = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: now)
        }
        costs["finish"] = try await cost {
            _ = try await ledger.finish(id: "new-\(round)", owner: "w", result: .succeeded, now: now)
        }
        costs["claimNext, idle"] = try await cost {
            _ = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: now)
        }
        costs["unnotified"] = try await cost { _ = try await ledger.unnotified(limit: 100) }
        try await ledger.markNotified(ids: ["new-\(round)"])
        costs["runningOwners"] = try await cost { _ = try await ledger.runningOwners() }
        costs["counters"] = try await cost { _ = try await ledger.counters() }
        costs["latencySamples (window of 100)"] = try await cost {
            _ = try await ledger.latencySamples(endpoint: "default", limit: 100)
        }
        costs["latencySamples since an hour ago (status page)"] = try await cost {
            _ = try await ledger.latencySamples(endpoint: "default", since: now.addingTimeInterval(-3600), limit: 10_000)
        }
        costs["latestFailures (status page)"] = try await cost { _ = try await ledger.latestFailures(limit: 10) }
        return costs
    }

    @Test func requestPathsCostTheSameWithAHistoryOfFinishedRequests() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("ledger.sqlite").path
            let meter = StatementMeter()
            let ledger = try SQLiteLedger(path: path, meter: meter)
            // Given a queue with some requests waiting and a window's worth of finished ones
            try await LedgerConformance.admit((0..<3).map { LedgerConformance.request("waiting-\($0)", endpoint: "other") }, to: ledger)
            try await DatabaseQueue(path: path).write { try Self.insertFinished(200, endpoint: "default", prefix: "window", into: $0) }
            let before = try await Self.costs(ledger, meter, round: 1)

            // When the ledger then holds tens of thousands more finished requests
            try await DatabaseQueue(path: path).write { try Self.insertFinished(Self.history, endpoint: "default", prefix: "old", into: $0) }
            let after = try await Self.costs(ledger, meter, round: 2)

            // Then no path does more work than before, give or take a few steps
            for (name, cost) in before.sorted(by: { $0.key < $1.key }) {
                let later = try #require(after[name])
                #expect(later <= cost + cost / 10 + 20, "\(name): \(cost) steps with 200 finished requests, \(later) with \(Self.history + 200)")
            }
            // And the counts are right
            let stats = try await ledger.queueStats()
            #expect(stats["default"]?.count(.succeeded) == Self.history + 200 + 2)
            #expect(stats["other"]?.count(.queued) == 3)
            #expect(stats["other"]?.oldestQueuedAt == LedgerConformance.t0)
        }
    }

    @Test func theMeterSeesAScanOfTheWholeTable() async throws {
        // A check that the measure itself would catch a path that reads every row.
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("ledger.sqlite").path
            let meter = StatementMeter()
            let ledger = try SQLiteLedger(path: path, meter: meter)
            try await DatabaseQueue(path: path).write { try Self.insertFinished(Self.history, endpoint: "default", prefix: "old", into: $0) }
            meter.reset()
            _ = try await ledger.list(LedgerQuery(endpoint: "elsewhere", limit: 10))
            #expect(meter.stepsTaken > Self.history)
        }
    }

    @Test func countsFollowEveryInsertStateChangeAndDelete() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("ledger.sqlite").path
            let ledger = try SQLiteLedger(path: path)
            let t0 = LedgerConformance.t0
            try await LedgerConformance.admit((0..<4).map { LedgerConformance.request("r\($0)") }, to: ledger)
            _ = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: t0)
            _ = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: t0)
            _ = try await ledger.finish(id: "r0", owner: "w", result: .succeeded, now: t0)
            _ = try await ledger.finish(id: "r1", owner: "w", result: .failed(Failure(.modelError, "no")), now: t0)
            _ = try await ledger.cancel(id: "r2", now: t0)
            _ = try await ledger.retry(id: "r1", now: t0)
            var stats = try await ledger.queueStats()["default"]
            #expect(stats?.counts == [.queued: 2, .succeeded: 1, .cancelled: 1])
            #expect(try await ledger.delete(ids: ["r0", "r2"]) == 2)
            stats = try await ledger.queueStats()["default"]
            #expect(stats?.counts == [.queued: 2])
            // The counts always equal a full count of the table.
            let full = try await DatabaseQueue(path: path).read { db in
                try Row.fetchAll(db, sql: "SELECT endpoint, state, COUNT(*) AS n FROM requests GROUP BY endpoint, state")
                    .map { "\($0["endpoint"] as String)/\($0["state"] as String)=\($0["n"] as Int)" }
            }
            let kept = try await DatabaseQueue(path: path).read { db in
                try Row.fetchAll(db, sql: "SELECT endpoint, state, count FROM queue_counts WHERE count > 0 ORDER BY endpoint, state")
                    .map { "\($0["endpoint"] as String)/\($0["state"] as String)=\($0["count"] as Int)" }
            }
            #expect(full.sorted() == kept)
        }
    }
}
