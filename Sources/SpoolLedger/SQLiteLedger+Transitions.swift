import Foundation
import GRDB
import SpoolCore

/// The transitions that read the row first and ask `RequestLifecycle` where it goes: the SQL
/// applies the lifecycle's decision, inside the same IMMEDIATE transaction as the read.
extension SQLiteLedger {
    /// Ends the attempts `owner` is running, in one transaction. Success finishes a request; a
    /// failure is appended to the row's attempt history and either requeues the request
    /// (retryable, attempts left) or fails it with the failure's code, reason and evidence.
    /// A request no longer running for `owner` (cancelled, or requeued) gives nil.
    public func finish(_ attempts: [FinishedAttempt], owner: String, now: Date) async throws -> [InferenceRequest?] {
        if attempts.isEmpty { return [] }
        let succeeded = attempts.filter { if case .succeeded = $0.result { true } else { false } }.map(\.id)
        return try await write { db in
            // Successes need no decision: one statement for all of them.
            var finished: [String: InferenceRequest] = [:]
            for ids in stride(from: 0, to: succeeded.count, by: 256).map({ Array(succeeded[$0..<min($0 + 256, succeeded.count)]) }) {
                for row in try Self.requests(db, """
                    UPDATE requests
                    SET state = 'succeeded', finished_at = \(now.millisecondsSince1970), owner = NULL,
                        failure_code = NULL, failure_reason = NULL, \(ModelEvidence.assignments(nil))
                    WHERE id IN \(ids) AND state = 'running' AND owner = \(owner)
                    RETURNING *
                    """) {
                    finished[row.id] = row
                }
            }
            return try attempts.map { attempt in
                guard case .failed(let failure) = attempt.result else { return finished[attempt.id] }
                guard let current = try Self.request(db, """
                    SELECT * FROM requests WHERE id = \(attempt.id) AND state = 'running' AND owner = \(owner)
                    """)
                else { return nil }
                return try Self.fail(db, current, failure, now: now)
            }
        }
    }

    /// Ends `current`'s attempt with `failure`: requeued or failed, as the lifecycle decides.
    private static func fail(_ db: Database, _ current: InferenceRequest, _ failure: Failure, now: Date) throws -> InferenceRequest? {
        let event = RequestEvent.fail(code: failure.code, retryable: failure.retryable)
        let next = try transition(event, of: current, refusing: "cannot finish \(current.id)")
        let history = try appending(AttemptError(
            attempt: current.attempts, at: now, code: failure.code, reason: failure.reason,
            evidence: failure.evidence, requeued: next == .queued))
        switch next {
        case .queued:
            return try request(db, """
                UPDATE requests
                SET state = 'queued', owner = NULL, started_at = NULL, bytes_processed = 0, \(history)
                WHERE seq = \(current.seq)
                RETURNING *
                """)
        case .failed:
            return try request(db, """
                UPDATE requests
                SET state = 'failed', finished_at = \(now.millisecondsSince1970), owner = NULL,
                    failure_code = \(failure.code.rawValue), failure_reason = \(failure.reason),
                    \(ModelEvidence.assignments(failure.evidence)), \(history)
                WHERE seq = \(current.seq)
                RETURNING *
                """)
        default:
            throw LedgerError.conflict("cannot finish \(current.id): a failed attempt cannot make it \(next.rawValue)")
        }
    }

    /// Cancels a queued or running request (its owner learns it from `recordProgress` or
    /// `finish`). Returns nil for an unknown id.
    /// - Throws: `LedgerError.conflict` when the request already finished.
    public func cancel(id: String, now: Date) async throws -> InferenceRequest? {
        let now = now.millisecondsSince1970
        return try await write { db in
            guard let current = try Self.request(db, "SELECT * FROM requests WHERE id = \(id)") else { return nil }
            _ = try Self.transition(.cancel, of: current, refusing: "cannot cancel \(id)")
            return try Self.request(db, """
                UPDATE requests
                SET state = 'cancelled', finished_at = \(now), owner = NULL,
                    failure_code = 'Cancelled', failure_reason = 'The request was cancelled.',
                    \(ModelEvidence.assignments(nil))
                WHERE seq = \(current.seq)
                RETURNING *
                """)
        }
    }

    /// Sends a failed, expired or cancelled request back to the queue with a fresh set of
    /// attempts and a fresh TTL counted from `now`; it keeps its place (`seq`), its arrival time
    /// and its attempt history, and will be notified again when it finishes.
    /// Returns nil for an unknown id.
    /// - Throws: `LedgerError.conflict` when the request is queued, running or succeeded.
    public func retry(id: String, now: Date) async throws -> InferenceRequest? {
        let now = now.millisecondsSince1970
        return try await write { db in
            guard let current = try Self.request(db, "SELECT * FROM requests WHERE id = \(id)") else { return nil }
            _ = try Self.transition(.retry, of: current, refusing: "cannot retry \(id)")
            return try Self.request(db, """
                UPDATE requests
                SET state = 'queued', started_at = NULL, finished_at = NULL,
                    expires_at = \(now) + ttl_seconds * 1000, attempts = 0, bytes_processed = 0,
                    failure_code = NULL, failure_reason = NULL, \(ModelEvidence.assignments(nil)),
                    notified = 0
                WHERE seq = \(current.seq)
                RETURNING *
                """)
        }
    }

    /// The state `event` moves `request` to.
    /// - Throws: `LedgerError.conflict` with the lifecycle's reason when it refuses.
    private static func transition(
        _ event: RequestEvent, of request: InferenceRequest, refusing context: String
    ) throws -> RequestState {
        let lifecycle = RequestLifecycle(maxAttempts: request.maxAttempts)
        switch lifecycle.apply(event, to: request.state, attempts: request.attempts) {
        case .moveTo(let state):
            return state
        case .refuse(let reason):
            throw LedgerError.conflict("\(context): \(reason)")
        }
    }

    /// `attempt_errors = …` appending `entry` to the JSON array.
    private static func appending(_ entry: AttemptError) throws -> SQL {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = String(decoding: try encoder.encode(entry), as: UTF8.self)
        return "attempt_errors = json_insert(attempt_errors, '$[#]', json(\(json)))"
    }
}
