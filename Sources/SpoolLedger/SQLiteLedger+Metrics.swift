import Foundation
import GRDB
import SpoolCore

/// What `spool stats` and `GET /metrics` read: counters (table `counters`, migration "v2") and
/// the timings of recently finished requests.
extension SQLiteLedger {
    /// Adds `amount` to `endpoint`'s counter `name`, creating it at 0, in one write transaction.
    public func incrementCounter(_ name: String, endpoint: String, by amount: Int = 1) async throws {
        try await write { db in
            try Self.execute(db, """
                INSERT INTO counters (endpoint, name, value) VALUES (\(endpoint), \(name), \(amount))
                ON CONFLICT (endpoint, name) DO UPDATE SET value = value + excluded.value
                """)
        }
    }

    /// Every counter: endpoint → counter name → value.
    public func counters() async throws -> [String: [String: Int]] {
        try await read { db in
            var result: [String: [String: Int]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT endpoint, name, value FROM counters") {
                result[row["endpoint"] as String, default: [:]][row["name"] as String] = row["value"]
            }
            return result
        }
    }

    /// The `limit` most recently finished requests of `endpoint` that started (succeeded or
    /// failed), finished at or after `since` when given, most recent finish first. A range of
    /// the covering index `requests_latency`, walked backwards.
    public func latencySamples(endpoint: String, since: Date?, limit: Int) async throws -> [LatencySample] {
        let limit = max(0, limit)
        let from = since?.millisecondsSince1970 ?? Int64.min
        return try await read { db in
            // Read by column position from a cursor: looking each column up by name cost more
            // than the query itself for the 10,000 rows `spool stats` reads.
            let rows = try Row.fetchCursor(db, SQLRequest<Row>(literal: """
                SELECT received_at, started_at, finished_at FROM requests
                WHERE finished_at IS NOT NULL AND endpoint = \(endpoint) AND finished_at >= \(from)
                    AND state IN ('succeeded', 'failed') AND started_at IS NOT NULL
                ORDER BY finished_at DESC LIMIT \(limit)
                """, cached: true))
            var samples: [LatencySample] = []
            while let row = try rows.next() {
                samples.append(LatencySample(
                    receivedAt: Date(millisecondsSince1970: row[0]),
                    startedAt: Date(millisecondsSince1970: row[1]),
                    finishedAt: Date(millisecondsSince1970: row[2])))
            }
            return samples
        }
    }
}
