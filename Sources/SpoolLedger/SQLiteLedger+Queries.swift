import Foundation
import GRDB
import SpoolCore

extension SQLiteLedger {
    /// How many values one `IN (…)` list binds; longer inputs are split, well under SQLite's
    /// limit on bound parameters.
    static let chunkSize = 500

    /// The request with InferenceId `id`, or nil.
    public func request(id: String) async throws -> InferenceRequest? {
        try await read { db in
            try Self.request(db, "SELECT * FROM requests WHERE id = \(id)")
        }
    }

    /// Requests matching `query`, newest arrival first.
    public func list(_ query: LedgerQuery) async throws -> [InferenceRequest] {
        var conditions: [SQL] = ["1"]
        if let states = query.states {
            conditions.append("state IN \(states.map(\.rawValue))")
        }
        if let endpoint = query.endpoint {
            conditions.append("endpoint = \(endpoint)")
        }
        let filter = conditions.joined(separator: " AND ")
        let limit = max(0, query.limit)
        return try await read { db in
            try Self.requests(db, "SELECT * FROM requests WHERE \(filter) ORDER BY seq DESC LIMIT \(limit)")
        }
    }

    /// Finished requests whose finish time is strictly before `cutoff`, earliest finish first
    /// (index `requests_finished_at`).
    public func finished(before cutoff: Date, limit: Int) async throws -> [InferenceRequest] {
        let limit = max(0, limit)
        return try await read { db in
            try Self.requests(db, """
                SELECT * FROM requests
                WHERE finished_at IS NOT NULL AND finished_at < \(cutoff.millisecondsSince1970)
                ORDER BY finished_at, seq LIMIT \(limit)
                """)
        }
    }

    public func latestFailures(limit: Int) async throws -> [InferenceRequest] {
        let limit = max(0, limit)
        return try await read { db in
            try Self.requests(db, """
                SELECT * FROM requests INDEXED BY requests_failures
                WHERE state IN ('failed', 'expired', 'cancelled')
                ORDER BY finished_at DESC LIMIT \(limit)
                """)
        }
    }

    /// Per endpoint that has requests: counts by state, and the arrival of the oldest queued one.
    /// Reads the counts the triggers keep (`queue_counts`) and one index entry per endpoint with
    /// a queue: the cost does not grow with the finished requests the ledger holds.
    public func queueStats() async throws -> [String: QueueStats] {
        try await read { db in
            var stats: [String: QueueStats] = [:]
            let rows = try Row.fetchCursor(db.cachedStatement(sql: """
                SELECT endpoint, state, count FROM queue_counts WHERE count > 0
                """))
            while let row = try rows.next() {
                guard let state = RequestState(rawValue: row[1]) else { continue }
                stats[row[0] as String, default: QueueStats()].counts[state] = row[2]
            }
            for (endpoint, endpointStats) in stats where endpointStats.count(.queued) > 0 {
                let oldest = try Int64.fetchOne(db.cachedStatement(sql: """
                    SELECT received_at FROM requests WHERE state = 'queued' AND endpoint = ?
                    ORDER BY seq LIMIT 1
                    """), arguments: [endpoint])
                stats[endpoint]?.oldestQueuedAt = oldest.map(Date.init(millisecondsSince1970:))
            }
            return stats
        }
    }

    /// The tokens among `tokens` that some request carries.
    public func recordedClaimTokens(among tokens: [String]) async throws -> Set<String> {
        let unique = Array(Set(tokens))
        return try await read { db in
            var known = Set<String>()
            for start in stride(from: 0, to: unique.count, by: Self.chunkSize) {
                let chunk = Array(unique[start..<min(start + Self.chunkSize, unique.count)])
                known.formUnion(try String.fetchSet(db, SQLRequest<String>(literal: """
                    SELECT claim_token FROM requests WHERE claim_token IN \(chunk)
                    """)))
            }
            return known
        }
    }

    /// Finished requests not yet marked notified, earliest finish first.
    public func unnotified(limit: Int) async throws -> [InferenceRequest] {
        let limit = max(0, limit)
        return try await read { db in
            try Self.requests(db, """
                SELECT * FROM requests
                WHERE notified = 0 AND finished_at IS NOT NULL
                ORDER BY finished_at, seq LIMIT \(limit)
                """)
        }
    }

    /// Marks the requests' finish notifications as delivered.
    public func markNotified(ids: [String]) async throws {
        _ = try await inChunks(ids) { db, chunk in
            try Self.execute(db, "UPDATE requests SET notified = 1 WHERE id IN \(chunk)")
        }
    }

    /// Deletes the finished requests among `ids` (for `spool gc`); queued and running ones are
    /// kept. Returns how many rows were deleted.
    @discardableResult
    public func delete(ids: [String]) async throws -> Int {
        try await inChunks(ids) { db, chunk in
            try Self.execute(db, "DELETE FROM requests WHERE finished_at IS NOT NULL AND id IN \(chunk)")
        }
    }

    /// The failed attempts of a request, oldest first, or nil for an unknown id.
    public func attemptErrors(id: String) async throws -> [AttemptError]? {
        let json = try await read { db in
            try String.fetchOne(db, SQLRequest<String>(literal: "SELECT attempt_errors FROM requests WHERE id = \(id)"))
        }
        guard let json else { return nil }
        do {
            return try JSONDecoder().decode([AttemptError].self, from: Data(json.utf8))
        } catch {
            throw LedgerError.storage(
                .corrupt,
                message: "requests.attempt_errors of \(id) is not a list of attempt errors: \(error)")
        }
    }

    /// Runs `statement` for each chunk of `values` in one write transaction; returns the
    /// number of rows changed.
    private func inChunks(
        _ values: [String], _ statement: @escaping @Sendable (Database, [String]) throws -> Void
    ) async throws -> Int {
        guard !values.isEmpty else { return 0 }
        return try await write { db in
            var changed = 0
            for start in stride(from: 0, to: values.count, by: Self.chunkSize) {
                try statement(db, Array(values[start..<min(start + Self.chunkSize, values.count)]))
                changed += db.changesCount
            }
            return changed
        }
    }
}
