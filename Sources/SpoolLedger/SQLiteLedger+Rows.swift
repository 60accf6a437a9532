import Foundation
import GRDB
import GRDBSQLite
import Synchronization
import SpoolCore

/// Where each column of the `requests` table is in a statement's result, looked up once per
/// statement: GRDB's lookup by name compares lowercased names, which costs more than the rest of
/// a row's decoding when done for every column of every row.
struct RequestColumns {
    let seq, id, endpoint, source, inputPath, claimToken, payloadBytes, contentType, accept,
        customAttributes, ttlSeconds, timeoutSeconds, maxAttempts, state, receivedAt, startedAt,
        finishedAt, attempts, bytesProcessed, outputLocation, failureLocation, failureCode,
        failureReason, exitStatus, signal, httpStatus, evidenceTail, owner, notified: Int

    /// The columns of a statement's result, remembered by SQL text (the ledger runs a few dozen
    /// distinct statements, thousands of times a second).
    /// The key is SQLite's own copy of the text: GRDB's `Statement.sql` trims it through
    /// Foundation on every call, which cost more than the lookup it keys.
    static func of(_ statement: Statement) throws -> RequestColumns {
        let sql = String(cString: sqlite3_sql(statement.sqliteStatement))
        if let known = cache.withLock({ $0[sql] }) { return known }
        let columns = try RequestColumns(statement.columnNames)
        cache.withLock { cache in
            if cache.count >= 1000 { cache.removeAll() }
            cache[sql] = columns
        }
        return columns
    }

    private static let cache = Mutex<[String: RequestColumns]>([:])

    init(_ names: [String]) throws {
        var index: [String: Int] = [:]
        for (i, name) in names.enumerated() where index[name.lowercased()] == nil { index[name.lowercased()] = i }
        func at(_ column: String) throws -> Int {
            guard let i = index[column] else {
                throw LedgerError.storage(.corrupt, message: "requests.\(column) is missing from the result")
            }
            return i
        }
        seq = try at("seq")
        id = try at("id")
        endpoint = try at("endpoint")
        source = try at("source")
        inputPath = try at("input_path")
        claimToken = try at("claim_token")
        payloadBytes = try at("payload_bytes")
        contentType = try at("content_type")
        accept = try at("accept")
        customAttributes = try at("custom_attributes")
        ttlSeconds = try at("ttl_seconds")
        timeoutSeconds = try at("timeout_seconds")
        maxAttempts = try at("max_attempts")
        state = try at("state")
        receivedAt = try at("received_at")
        startedAt = try at("started_at")
        finishedAt = try at("finished_at")
        attempts = try at("attempts")
        bytesProcessed = try at("bytes_processed")
        outputLocation = try at("output_location")
        failureLocation = try at("failure_location")
        failureCode = try at("failure_code")
        failureReason = try at("failure_reason")
        exitStatus = try at("exit_status")
        signal = try at("signal")
        httpStatus = try at("http_status")
        evidenceTail = try at("evidence_tail")
        owner = try at("owner")
        notified = try at("notified")
    }
}

extension InferenceRequest {
    /// The one place a `requests` row becomes a request (`SELECT *` or `RETURNING *`).
    init(row: Row, columns c: RequestColumns) throws {
        func value<Value: RawRepresentable<String>>(_ index: Int, _ column: String, as type: Value.Type) throws -> Value? {
            guard let raw: String = try row.decode(atIndex: index) else { return nil }
            guard let value = Value(rawValue: raw) else {
                throw LedgerError.storage(
                    .corrupt,
                    message: "requests.\(column) holds an unknown value '\(raw)'")
            }
            return value
        }
        func required<Value>(_ column: String, _ value: Value?) throws -> Value {
            guard let value else {
                throw LedgerError.storage(.corrupt, message: "requests.\(column) is NULL")
            }
            return value
        }
        func date(_ index: Int) throws -> Date? {
            let milliseconds: Int64? = try row.decode(atIndex: index)
            return milliseconds.map(Date.init(millisecondsSince1970:))
        }
        let exitStatus: Int32? = try row.decode(atIndex: c.exitStatus)
        let signal: Int32? = try row.decode(atIndex: c.signal)
        let httpStatus: Int? = try row.decode(atIndex: c.httpStatus)
        let tail: String? = try row.decode(atIndex: c.evidenceTail)
        let evidence = exitStatus == nil && signal == nil && httpStatus == nil && tail == nil
            ? nil : ModelEvidence(exitStatus: exitStatus, signal: signal, httpStatus: httpStatus, tail: tail)

        self.init(
            seq: try row.decode(atIndex: c.seq),
            id: try row.decode(atIndex: c.id),
            endpoint: try row.decode(atIndex: c.endpoint),
            source: try required("source", value(c.source, "source", as: RequestSource.self)),
            inputPath: try row.decode(atIndex: c.inputPath),
            claimToken: try row.decode(atIndex: c.claimToken),
            payloadBytes: try row.decode(atIndex: c.payloadBytes),
            contentType: try row.decode(atIndex: c.contentType),
            accept: try row.decode(atIndex: c.accept),
            customAttributes: try row.decode(atIndex: c.customAttributes),
            ttlSeconds: try row.decode(atIndex: c.ttlSeconds),
            timeoutSeconds: try row.decode(atIndex: c.timeoutSeconds),
            maxAttempts: try row.decode(atIndex: c.maxAttempts),
            state: try required("state", value(c.state, "state", as: RequestState.self)),
            receivedAt: try required("received_at", date(c.receivedAt)),
            startedAt: try date(c.startedAt),
            finishedAt: try date(c.finishedAt),
            attempts: try row.decode(atIndex: c.attempts),
            bytesProcessed: try row.decode(atIndex: c.bytesProcessed),
            outputLocation: try row.decode(atIndex: c.outputLocation),
            failureLocation: try row.decode(atIndex: c.failureLocation),
            failureCode: try value(c.failureCode, "failure_code", as: FailureCode.self),
            failureReason: try row.decode(atIndex: c.failureReason),
            evidence: evidence,
            owner: try row.decode(atIndex: c.owner),
            notified: try row.decode(atIndex: c.notified)
        )
    }
}

extension ModelEvidence {
    /// `exit_status = ?, signal = ?, http_status = ?, evidence_tail = ?` for an UPDATE
    /// (all NULL for no evidence).
    static func assignments(_ evidence: ModelEvidence?) -> SQL {
        """
        exit_status = \(evidence?.exitStatus), signal = \(evidence?.signal),
        http_status = \(evidence?.httpStatus), evidence_tail = \(evidence?.tail)
        """
    }
}
