import Foundation
import PostgresNIO
import SpoolCore

/// What readers ask: requests, the queue's counts, metrics; and the bookkeeping writes of
/// notification, retention and counters.
extension PostgresLedger {
    public func request(id: String) async throws -> InferenceRequest? {
        try await requests("SELECT \(unescaped: Self.columns) FROM requests WHERE id = \(id)").first
    }

    public func list(_ query: LedgerQuery) async throws -> [InferenceRequest] {
        let states = query.states?.map(\.rawValue)
        let limit = max(0, query.limit)
        return try await requests("""
            SELECT \(unescaped: Self.columns) FROM requests
            WHERE (\(states)::text[] IS NULL OR state = ANY(\(states)::text[]))
                AND (\(query.endpoint)::text IS NULL OR endpoint = \(query.endpoint)::text)
            ORDER BY seq DESC LIMIT \(limit)
            """)
    }

    public func finished(before cutoff: Date, limit: Int) async throws -> [InferenceRequest] {
        try await requests("""
            SELECT \(unescaped: Self.columns) FROM requests
            WHERE finished_at IS NOT NULL AND finished_at < \(cutoff.millisecondsSince1970)
            ORDER BY finished_at, seq LIMIT \(max(0, limit))
            """)
    }

    public func latestFailures(limit: Int) async throws -> [InferenceRequest] {
        try await requests("""
            SELECT \(unescaped: Self.columns) FROM requests
            WHERE state IN ('failed', 'expired', 'cancelled')
            ORDER BY finished_at DESC LIMIT \(max(0, limit))
            """)
    }

    /// Counts by state from `queue_counts` plus the deltas not yet folded into it, and the oldest
    /// queued arrival of each endpoint with a queue (one index probe each).
    public func queueStats() async throws -> [String: QueueStats] {
        var stats: [String: QueueStats] = [:]
        for row in try await rows("""
            SELECT endpoint, state, SUM(n)::int8 FROM (
                SELECT endpoint, state, count AS n FROM queue_counts
                UNION ALL SELECT endpoint, state, n::int8 FROM queue_count_deltas) AS counts
            GROUP BY endpoint, state HAVING SUM(n) > 0
            """) {
            let (endpoint, state, count) = try row.decode((String, String, Int).self)
            guard let state = RequestState(rawValue: state) else { continue }
            stats[endpoint, default: QueueStats()].counts[state] = count
        }
        let queued = stats.filter { $0.value.count(.queued) > 0 }.map(\.key)
        if !queued.isEmpty {
            for row in try await rows("""
                SELECT e, (SELECT received_at FROM requests WHERE state = 'queued' AND endpoint = e ORDER BY seq LIMIT 1)
                FROM unnest(\(queued)::text[]) AS e
                """) {
                let (endpoint, oldest) = try row.decode((String, Int64?).self)
                stats[endpoint]?.oldestQueuedAt = oldest.map(Date.init(millisecondsSince1970:))
            }
        }
        return stats
    }

    /// Moves the counts' deltas into `queue_counts`, at most once a second per ledger and by one
    /// process at a time, so `queueStats` sums few rows however busy the queue is.
    func foldCountsIfDue(now: Int64) async throws {
        guard lastFoldIsDue(now: now) else { return }
        try await transaction { statements in
            let locked = try await statements.rows("SELECT pg_try_advisory_xact_lock(\(Self.foldLock))").first?.decode(Bool.self) ?? false
            guard locked else { return }
            try await statements.run("""
                WITH moved AS (DELETE FROM queue_count_deltas RETURNING endpoint, state, n),
                sums AS (SELECT endpoint, state, SUM(n)::int8 AS n FROM moved GROUP BY endpoint, state)
                INSERT INTO queue_counts (endpoint, state, count) SELECT endpoint, state, n FROM sums
                ON CONFLICT (endpoint, state) DO UPDATE SET count = queue_counts.count + excluded.count
                """)
        }
    }

    private static let foldLock: Int64 = 0x5370_6F6F_6C43_6E74

    public func runningOwners() async throws -> Set<String> {
        Set(try await rows("SELECT DISTINCT owner FROM requests WHERE state = 'running'").map { try $0.decode(String.self) })
    }

    public func recordedClaimTokens(among tokens: [String]) async throws -> Set<String> {
        guard !tokens.isEmpty else { return [] }
        return Set(try await rows("SELECT claim_token FROM requests WHERE claim_token = ANY(\(Array(Set(tokens))))")
            .map { try $0.decode(String.self) })
    }

    public func unnotified(limit: Int) async throws -> [InferenceRequest] {
        try await requests("""
            SELECT \(unescaped: Self.columns) FROM requests
            WHERE NOT notified AND finished_at IS NOT NULL
            ORDER BY finished_at, seq LIMIT \(max(0, limit))
            """)
    }

    public func markNotified(ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        _ = try await rows("UPDATE requests SET notified = true WHERE id = ANY(\(ids))")
    }

    @discardableResult
    public func delete(ids: [String]) async throws -> Int {
        guard !ids.isEmpty else { return 0 }
        return try await rows("DELETE FROM requests WHERE finished_at IS NOT NULL AND id = ANY(\(ids)) RETURNING seq").count
    }

    // MARK: Metrics

    public func incrementCounter(_ name: String, endpoint: String, by amount: Int) async throws {
        _ = try await rows("""
            INSERT INTO counters (endpoint, name, value) VALUES (\(endpoint), \(name), \(amount))
            ON CONFLICT (endpoint, name) DO UPDATE SET value = counters.value + excluded.value
            """)
    }

    public func counters() async throws -> [String: [String: Int]] {
        var result: [String: [String: Int]] = [:]
        for row in try await rows("SELECT endpoint, name, value FROM counters") {
            let (endpoint, name, value) = try row.decode((String, String, Int).self)
            result[endpoint, default: [:]][name] = value
        }
        return result
    }

    public func latencySamples(endpoint: String, since: Date?, limit: Int) async throws -> [LatencySample] {
        let from = since?.millisecondsSince1970 ?? Int64.min
        return try await rows("""
            SELECT received_at, started_at, finished_at FROM requests
            WHERE endpoint = \(endpoint) AND finished_at >= \(from)
                AND state IN ('succeeded', 'failed') AND started_at IS NOT NULL
            ORDER BY finished_at DESC LIMIT \(max(0, limit))
            """).map { row in
            let (received, started, finished) = try row.decode((Int64, Int64, Int64).self)
            return LatencySample(
                receivedAt: Date(millisecondsSince1970: received), startedAt: Date(millisecondsSince1970: started),
                finishedAt: Date(millisecondsSince1970: finished))
        }
    }
}
