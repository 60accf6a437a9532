import Foundation
import GRDB
import SpoolCore

extension SQLiteLedger {
    /// Records new requests in one transaction, each as `queued`, or as `failed` at its arrival
    /// time when it has an `initialFailure`. The ledger assigns `seq`; `state`, `attempts`,
    /// `owner`, times other than `receivedAt`, progress and failure fields are ignored. A request
    /// whose id exists gives `LedgerError.duplicateInferenceID` (its INSERT alone is undone).
    public func admit(_ admissions: [Admission]) async throws -> [Result<InferenceRequest, LedgerError>] {
        if admissions.isEmpty { return [] }
        return try await write { db in
            try admissions.map { admission in
                do {
                    return .success(try Self.insert(db, admission.request, initialFailure: admission.initialFailure))
                } catch let error as DatabaseError
                    where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE
                    && (error.message ?? "").contains("requests.id")
                {
                    return .failure(LedgerError.duplicateInferenceID(admission.request.id))
                }
            }
        }
    }

    private static let insertSQL = """
        INSERT INTO requests (
            id, endpoint, source, input_path, claim_token, payload_bytes, content_type,
            accept, custom_attributes, ttl_seconds, timeout_seconds, max_attempts, state,
            received_at, finished_at, expires_at, output_location, failure_location,
            failure_code, failure_reason, exit_status, signal, http_status, evidence_tail)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """

    private static func insert(_ db: Database, _ request: InferenceRequest, initialFailure: Failure?) throws -> InferenceRequest {
        let received = request.receivedAt.millisecondsSince1970
        let state: RequestState = initialFailure == nil ? .queued : .failed
        let finished: Int64? = initialFailure == nil ? nil : received
        let expires: Int64? = initialFailure == nil ? received + Int64(request.ttlSeconds) * 1000 : nil
        let evidence = initialFailure?.evidence
        // A fixed text with positional arguments: the statement cache finds it without the
        // text being rebuilt from 24 interpolations on every insert.
        let arguments: StatementArguments = [
            request.id, request.endpoint, request.source.rawValue, request.inputPath,
            request.claimToken, request.payloadBytes, request.contentType,
            request.accept, request.customAttributes, request.ttlSeconds,
            request.timeoutSeconds, request.maxAttempts, state.rawValue,
            received, finished, expires, request.outputLocation,
            request.failureLocation, initialFailure?.code.rawValue, initialFailure?.reason,
            evidence?.exitStatus, evidence?.signal, evidence?.httpStatus, evidence?.tail,
        ]
        try db.cachedStatement(sql: insertSQL).execute(arguments: arguments)
        // The row as stored, built here rather than read back (`RETURNING *` and its decoding
        // cost a third of the insert): the ledger adds only `seq` and its defaults.
        var stored = request
        stored.seq = db.lastInsertedRowID
        stored.state = state
        stored.receivedAt = Date(millisecondsSince1970: received)
        stored.startedAt = nil
        stored.finishedAt = finished.map(Date.init(millisecondsSince1970:))
        stored.attempts = 0
        stored.bytesProcessed = 0
        stored.failureCode = initialFailure?.code
        stored.failureReason = initialFailure?.reason
        stored.evidence = evidence.flatMap { $0.exitStatus == nil && $0.signal == nil && $0.httpStatus == nil && $0.tail == nil ? nil : $0 }
        stored.owner = nil
        stored.notified = false
        return stored
    }

    /// In one transaction: expires the queued requests of `endpoints` whose TTL ran out before
    /// `now`, then claims the oldest queued request (by arrival, across `endpoints`) for `owner`
    /// with a single `UPDATE … RETURNING`, starting one more attempt; with `batch`, the same
    /// statement also claims up to `batch.more` further small requests.
    public func claimNext(endpoints: [String], owner: String, now: Date, batch: ClaimBatch) async throws -> ClaimResult {
        guard !endpoints.isEmpty else { return ClaimResult(claimed: nil, expired: []) }
        let now = now.millisecondsSince1970
        // Idle workers poll: a read (which takes no lock in WAL mode, and is one index probe)
        // spares them a write transaction when nothing is queued. Workers that found work last
        // time go straight to the write.
        if !busyEndpoints.withLock({ $0.contains(endpoints) }) {
            let anyQueued = try await read { db in
                try SQLRequest<Bool>(literal: """
                    SELECT EXISTS (SELECT 1 FROM requests WHERE state = 'queued' AND endpoint IN \(endpoints))
                    """, cached: true).fetchOne(db) ?? false
            }
            guard anyQueued else { return ClaimResult(claimed: nil, expired: []) }
        }
        let result = try await write { db in
            let expired = try Self.requests(db, """
                UPDATE requests
                SET state = 'expired', finished_at = \(now), failure_code = 'Expired',
                    failure_reason = 'The request waited in the queue longer than its TTL of '
                        || ttl_seconds || ' seconds.'
                WHERE state = 'queued' AND expires_at < \(now) AND endpoint IN \(endpoints)
                RETURNING *
                """)
            // The oldest, and when it is small, the next small ones: one statement either way.
            let claimed = try Self.requests(db, """
                WITH first AS (
                    SELECT seq, payload_bytes FROM requests
                    WHERE state = 'queued' AND endpoint IN \(endpoints)
                    ORDER BY seq LIMIT 1),
                more AS (
                    SELECT seq FROM requests
                    WHERE state = 'queued' AND endpoint IN \(endpoints) AND payload_bytes <= \(batch.maxBytes)
                        AND seq > (SELECT seq FROM first) AND (SELECT payload_bytes FROM first) <= \(batch.maxBytes)
                    ORDER BY seq LIMIT \(batch.more))
                UPDATE requests
                SET state = 'running', owner = \(owner), started_at = \(now), expires_at = NULL,
                    attempts = attempts + 1, bytes_processed = 0
                WHERE seq IN (SELECT seq FROM first UNION ALL SELECT seq FROM more)
                RETURNING *
                """)
            return ClaimResult(batch: claimed.sorted { $0.seq < $1.seq }, expired: expired.sorted { $0.seq < $1.seq })
        }
        busyEndpoints.withLock { busy in
            if result.batch.isEmpty { busy.remove(endpoints) } else { busy.insert(endpoints) }
        }
        return result
    }

    /// Records progress of the attempt `owner` is running. Returns false when the request is no
    /// longer running for `owner`: the caller should stop the attempt.
    public func recordProgress(id: String, owner: String, bytes: Int64) async throws -> Bool {
        try await write { db in
            try Self.execute(db, """
                UPDATE requests SET bytes_processed = \(bytes)
                WHERE id = \(id) AND state = 'running' AND owner = \(owner)
                """)
            return db.changesCount > 0
        }
    }

    /// Puts the requests `owner` is running back in the queue, giving back the attempt they had
    /// started. They keep their place (their `seq`) and do not expire: they started in time.
    @discardableResult
    public func requeue(owner: String) async throws -> Int {
        try await write { db in
            try Self.execute(db, """
                UPDATE requests
                SET state = 'queued', owner = NULL, started_at = NULL, bytes_processed = 0,
                    attempts = MAX(attempts - 1, 0)
                WHERE state = 'running' AND owner = \(owner)
                """)
            return db.changesCount
        }
    }

    /// The owners of `running` requests.
    public func runningOwners() async throws -> Set<String> {
        try await read { db in
            try String.fetchSet(db, sql: "SELECT DISTINCT owner FROM requests WHERE state = 'running'")
        }
    }
}
