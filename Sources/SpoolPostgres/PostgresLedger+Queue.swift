import Foundation
import PostgresNIO
import SpoolCore

/// Admission, claims and the transitions of running requests.
extension PostgresLedger {
    /// Records new requests with one statement for the whole batch (`INSERT … SELECT FROM
    /// unnest(…)`), each `queued` (or `failed` at its arrival with an `initialFailure`). A taken
    /// id gives `duplicateInferenceID` for that request alone: `ON CONFLICT (id) DO NOTHING`
    /// inserts the others.
    public func admit(_ admissions: [Admission]) async throws -> [Result<InferenceRequest, LedgerError>] {
        if admissions.isEmpty { return [] }
        var ids: [String] = [], endpoints: [String] = [], sources: [String] = [], inputs: [String] = [], tokens: [String] = []
        var bytes: [Int64] = [], contentTypes: [String?] = [], accepts: [String?] = [], attributes: [String?] = []
        var ttls: [Int64] = [], timeouts: [Int64] = [], attemptLimits: [Int64] = [], states: [String] = []
        var received: [Int64] = [], finished: [Int64?] = [], expires: [Int64?] = [], outputs: [String] = [], failures: [String] = []
        var codes: [String?] = [], reasons: [String?] = [], exits: [Int32?] = [], signals: [Int32?] = [], statuses: [Int64?] = [], tails: [String?] = []
        for admission in admissions {
            let request = admission.request
            let failure = admission.initialFailure
            let arrival = request.receivedAt.millisecondsSince1970
            ids.append(request.id); endpoints.append(request.endpoint); sources.append(request.source.rawValue)
            inputs.append(request.inputPath); tokens.append(request.claimToken); bytes.append(request.payloadBytes)
            contentTypes.append(request.contentType); accepts.append(request.accept); attributes.append(request.customAttributes)
            ttls.append(Int64(request.ttlSeconds)); timeouts.append(Int64(request.timeoutSeconds)); attemptLimits.append(Int64(request.maxAttempts))
            states.append(failure == nil ? RequestState.queued.rawValue : RequestState.failed.rawValue)
            received.append(arrival); finished.append(failure == nil ? nil : arrival)
            expires.append(failure == nil ? arrival + Int64(request.ttlSeconds) * 1000 : nil)
            outputs.append(request.outputLocation); failures.append(request.failureLocation)
            codes.append(failure?.code.rawValue); reasons.append(failure?.reason)
            exits.append(failure?.evidence?.exitStatus); signals.append(failure?.evidence?.signal)
            statuses.append(failure?.evidence?.httpStatus.map(Int64.init)); tails.append(failure?.evidence?.tail)
        }
        // postgres-nio binds no NULL inside an array: absent values travel as a sentinel that
        // NULLIF turns back into NULL (a lone U+0001 for text, the smallest integer for numbers).
        let noText = "\u{1}", noNumber = Int64.min, noSmall = Int32.min
        var binds = PostgresBindings(capacity: 24)
        for column in [ids, endpoints, sources, inputs, tokens, states, outputs, failures] { binds.append(column) }
        for column in [contentTypes, accepts, attributes, codes, reasons, tails] { binds.append(column.map { $0 ?? noText }) }
        for column in [bytes, ttls, timeouts, attemptLimits, received] { binds.append(column) }
        for column in [finished, expires, statuses] { binds.append(column.map { $0 ?? noNumber }) }
        binds.append(exits.map { $0 ?? noSmall })
        binds.append(signals.map { $0 ?? noSmall })
        let query = PostgresQuery(unsafeSQL: """
            INSERT INTO requests (
                id, endpoint, source, input_path, claim_token, state, output_location, failure_location,
                content_type, accept, custom_attributes, failure_code, failure_reason, evidence_tail,
                payload_bytes, ttl_seconds, timeout_seconds, max_attempts, received_at,
                finished_at, expires_at, http_status, exit_status, signal)
            SELECT c1, c2, c3, c4, c5, c6, c7, c8,
                NULLIF(c9, chr(1)), NULLIF(c10, chr(1)), NULLIF(c11, chr(1)), NULLIF(c12, chr(1)), NULLIF(c13, chr(1)), NULLIF(c14, chr(1)),
                c15, c16, c17, c18, c19,
                NULLIF(c20, \(noNumber)), NULLIF(c21, \(noNumber)), NULLIF(c22, \(noNumber)), NULLIF(c23, \(noSmall)), NULLIF(c24, \(noSmall))
            FROM unnest(
                $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
                $15::int8[], $16::int8[], $17::int8[], $18::int8[], $19::int8[],
                $20::int8[], $21::int8[], $22::int8[], $23::int4[], $24::int4[])
                AS u(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, c20, c21, c22, c23, c24)
            ON CONFLICT (id) DO NOTHING
            RETURNING \(Self.columns)
            """, binds: binds)
        let stored = try await requests(query)
        let byToken = Dictionary(stored.map { ($0.claimToken, $0) }, uniquingKeysWith: { first, _ in first })
        let results: [Result<InferenceRequest, LedgerError>] = admissions.map { admission in
            if let row = byToken[admission.request.claimToken], row.id == admission.request.id { return .success(row) }
            return .failure(.duplicateInferenceID(admission.request.id))
        }
        announceQueued(Set(stored.filter { $0.state == .queued }.map(\.endpoint)))
        return results
    }

    /// Expires the queued requests of `endpoints` past their TTL, then claims the oldest queued
    /// one — and with `batch` the next small ones — in one statement:
    /// `WITH … FOR UPDATE SKIP LOCKED … UPDATE … RETURNING`, so concurrent claimers on any host
    /// pass each other's rows by and never take one twice. (`IN (SELECT … LIMIT n)` without a
    /// materialized, locked set can update more rows than the limit.)
    public func claimNext(endpoints: [String], owner: String, now: Date, batch: ClaimBatch) async throws -> ClaimResult {
        guard !endpoints.isEmpty else { return ClaimResult(claimed: nil, expired: []) }
        let now = now.millisecondsSince1970
        try await foldCountsIfDue(now: Date().millisecondsSince1970)
        // The sweep is a statement of its own: at most every 250 ms of the caller's clock (a
        // request past its TTL is never claimed meanwhile: the claim checks it too).
        let expired = !expiryIsDue(now: now) ? [] : try await requests("""
            UPDATE requests
            SET state = 'expired', finished_at = \(now), failure_code = 'Expired',
                failure_reason = 'The request waited in the queue longer than its TTL of '
                    || ttl_seconds || ' seconds.'
            WHERE seq IN (
                SELECT seq FROM requests
                WHERE state = 'queued' AND endpoint = ANY(\(endpoints)) AND expires_at < \(now)
                FOR UPDATE SKIP LOCKED)
            RETURNING \(unescaped: Self.columns)
            """)
        let claimed = try await requests("""
            WITH first AS MATERIALIZED (
                SELECT seq, payload_bytes FROM requests
                WHERE state = 'queued' AND endpoint = ANY(\(endpoints))
                    AND (expires_at IS NULL OR expires_at >= \(now))
                ORDER BY seq LIMIT 1
                FOR UPDATE SKIP LOCKED),
            more AS MATERIALIZED (
                SELECT seq FROM requests
                WHERE state = 'queued' AND endpoint = ANY(\(endpoints)) AND payload_bytes <= \(batch.maxBytes)
                    AND (expires_at IS NULL OR expires_at >= \(now))
                    AND seq > (SELECT seq FROM first) AND (SELECT payload_bytes FROM first) <= \(batch.maxBytes)
                ORDER BY seq LIMIT \(batch.more)
                FOR UPDATE SKIP LOCKED)
            UPDATE requests
            SET state = 'running', owner = \(owner), started_at = \(now), expires_at = NULL,
                attempts = attempts + 1, bytes_processed = 0
            WHERE seq IN (SELECT seq FROM first UNION ALL SELECT seq FROM more)
            RETURNING \(unescaped: Self.columns)
            """)
        return ClaimResult(batch: claimed.sorted { $0.seq < $1.seq }, expired: expired.sorted { $0.seq < $1.seq })
    }

    public func recordProgress(id: String, owner: String, bytes: Int64) async throws -> Bool {
        try await !rows("""
            UPDATE requests SET bytes_processed = \(bytes)
            WHERE id = \(id) AND state = 'running' AND owner = \(owner)
            RETURNING seq
            """).isEmpty
    }

    /// Puts the requests `owner` is running back in the queue, giving back their attempt; they
    /// keep their place and do not expire (they started in time).
    @discardableResult
    public func requeue(owner: String) async throws -> Int {
        try await rows(Self.requeueing(owner: owner)).count
    }

    /// Gives back `owner`'s running requests and their attempts (shutdown, and the rescue).
    static func requeueing(owner: String) -> PostgresQuery {
        """
        UPDATE requests
        SET state = 'queued', owner = NULL, started_at = NULL, bytes_processed = 0,
            attempts = GREATEST(attempts - 1, 0)
        WHERE state = 'running' AND owner = \(owner)
        RETURNING seq
        """
    }

    /// Ends the attempts `owner` is running, in one transaction: successes in one statement, each
    /// failure as the lifecycle decides (requeued with attempts left, or failed), with its entry
    /// in the row's attempt history. Nil for a request no longer running for `owner`.
    public func finish(_ attempts: [FinishedAttempt], owner: String, now: Date) async throws -> [InferenceRequest?] {
        if attempts.isEmpty { return [] }
        let succeeded = attempts.filter { if case .succeeded = $0.result { true } else { false } }.map(\.id)
        let milliseconds = now.millisecondsSince1970
        if succeeded.count == attempts.count {
            // All successes, the usual batch: one statement, no transaction around it.
            let rows = try await requests(Self.finishSucceeded(succeeded, owner: owner, at: milliseconds))
            let finished = Dictionary(rows.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            return attempts.map { finished[$0.id] }
        }
        return try await transaction { statements in
            var finished: [String: InferenceRequest] = [:]
            if !succeeded.isEmpty {
                for row in try await statements.requests(Self.finishSucceeded(succeeded, owner: owner, at: milliseconds)) {
                    finished[row.id] = row
                }
            }
            var results: [InferenceRequest?] = []
            for attempt in attempts {
                guard case .failed(let failure) = attempt.result else {
                    results.append(finished[attempt.id])
                    continue
                }
                guard let current = try await statements.requests("""
                    SELECT \(unescaped: Self.columns) FROM requests
                    WHERE id = \(attempt.id) AND state = 'running' AND owner = \(owner)
                    FOR UPDATE
                    """).first
                else {
                    results.append(nil)
                    continue
                }
                results.append(try await Self.fail(statements, current, failure, now: now))
            }
            return results
        }
    }

    private static func finishSucceeded(_ ids: [String], owner: String, at milliseconds: Int64) -> PostgresQuery {
        """
        UPDATE requests
        SET state = 'succeeded', finished_at = \(milliseconds), owner = NULL,
            failure_code = NULL, failure_reason = NULL,
            exit_status = NULL, signal = NULL, http_status = NULL, evidence_tail = NULL
        WHERE id = ANY(\(ids)) AND state = 'running' AND owner = \(owner)
        RETURNING \(unescaped: Self.columns)
        """
    }

    private static func fail(_ statements: Statements, _ current: InferenceRequest, _ failure: Failure, now: Date) async throws -> InferenceRequest? {
        let next = try transition(.fail(code: failure.code, retryable: failure.retryable), of: current, refusing: "cannot finish \(current.id)")
        let entry = AttemptError(
            attempt: current.attempts, at: now, code: failure.code, reason: failure.reason,
            evidence: failure.evidence, requeued: next == .queued)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = String(decoding: try encoder.encode(entry), as: UTF8.self)
        let evidence = failure.evidence
        switch next {
        case .queued:
            return try await statements.requests("""
                UPDATE requests
                SET state = 'queued', owner = NULL, started_at = NULL, bytes_processed = 0,
                    attempt_errors = attempt_errors || jsonb_build_array(\(json)::jsonb)
                WHERE seq = \(current.seq)
                RETURNING \(unescaped: Self.columns)
                """).first
        case .failed:
            return try await statements.requests("""
                UPDATE requests
                SET state = 'failed', finished_at = \(now.millisecondsSince1970), owner = NULL,
                    failure_code = \(failure.code.rawValue), failure_reason = \(failure.reason),
                    exit_status = \(evidence?.exitStatus), signal = \(evidence?.signal),
                    http_status = \(evidence?.httpStatus), evidence_tail = \(evidence?.tail),
                    attempt_errors = attempt_errors || jsonb_build_array(\(json)::jsonb)
                WHERE seq = \(current.seq)
                RETURNING \(unescaped: Self.columns)
                """).first
        default:
            throw LedgerError.conflict("cannot finish \(current.id): a failed attempt cannot make it \(next.rawValue)")
        }
    }

    /// Cancels a queued or running request; nil for an unknown id.
    /// - Throws: `LedgerError.conflict` when it already finished.
    public func cancel(id: String, now: Date) async throws -> InferenceRequest? {
        try await transaction { statements in
            guard let current = try await statements.locked(id: id) else { return nil }
            _ = try Self.transition(.cancel, of: current, refusing: "cannot cancel \(id)")
            return try await statements.requests("""
                UPDATE requests
                SET state = 'cancelled', finished_at = \(now.millisecondsSince1970), owner = NULL,
                    failure_code = 'Cancelled', failure_reason = 'The request was cancelled.',
                    exit_status = NULL, signal = NULL, http_status = NULL, evidence_tail = NULL
                WHERE seq = \(current.seq)
                RETURNING \(unescaped: Self.columns)
                """).first
        }
    }

    /// Sends a failed, expired or cancelled request back to the queue with fresh attempts and a
    /// TTL counted from `now`; it keeps its place, arrival and attempt history.
    /// - Throws: `LedgerError.conflict` when it is queued, running or succeeded.
    public func retry(id: String, now: Date) async throws -> InferenceRequest? {
        try await transaction { statements in
            guard let current = try await statements.locked(id: id) else { return nil }
            _ = try Self.transition(.retry, of: current, refusing: "cannot retry \(id)")
            return try await statements.requests("""
                UPDATE requests
                SET state = 'queued', started_at = NULL, finished_at = NULL,
                    expires_at = \(now.millisecondsSince1970) + ttl_seconds * 1000, attempts = 0,
                    bytes_processed = 0, failure_code = NULL, failure_reason = NULL,
                    exit_status = NULL, signal = NULL, http_status = NULL, evidence_tail = NULL,
                    notified = false
                WHERE seq = \(current.seq)
                RETURNING \(unescaped: Self.columns)
                """).first
        }
    }

    private static func transition(_ event: RequestEvent, of request: InferenceRequest, refusing context: String) throws -> RequestState {
        switch RequestLifecycle(maxAttempts: request.maxAttempts).apply(event, to: request.state, attempts: request.attempts) {
        case .moveTo(let state): return state
        case .refuse(let reason): throw LedgerError.conflict("\(context): \(reason)")
        }
    }
}
