import Foundation
import GRDB
import SpoolCore

/// Times are stored as INTEGER milliseconds since 1970: sortable, comparable in SQL, and the
/// same on every platform. Anything finer than a millisecond is rounded away. The arithmetic goes
/// through `timeIntervalSinceReferenceDate`, the value a `Date` holds, so that a date with whole
/// milliseconds reads back equal to itself.
extension Date {
    private static let referenceDateMilliseconds: Int64 = 978_307_200_000

    var millisecondsSince1970: Int64 {
        Int64((timeIntervalSinceReferenceDate * 1000).rounded()) + Self.referenceDateMilliseconds
    }

    init(millisecondsSince1970 milliseconds: Int64) {
        self.init(timeIntervalSinceReferenceDate: Double(milliseconds - Self.referenceDateMilliseconds) / 1000)
    }
}

extension InferenceRequest {
    /// The one place a `requests` row becomes a request (`SELECT *` or `RETURNING *`).
    init(row: Row) throws {
        func value<Value: RawRepresentable<String>>(_ column: String, as type: Value.Type) throws -> Value? {
            guard let raw: String = try row.decode(forColumn: column) else { return nil }
            guard let value = Value(rawValue: raw) else {
                throw LedgerError.storage(
                    code: ResultCode.SQLITE_MISMATCH.rawValue,
                    message: "requests.\(column) holds an unknown value '\(raw)'")
            }
            return value
        }
        func required<Value>(_ column: String, _ value: Value?) throws -> Value {
            guard let value else {
                throw LedgerError.storage(code: ResultCode.SQLITE_MISMATCH.rawValue, message: "requests.\(column) is NULL")
            }
            return value
        }
        func date(_ column: String) throws -> Date? {
            let milliseconds: Int64? = try row.decode(forColumn: column)
            return milliseconds.map(Date.init(millisecondsSince1970:))
        }

        self.init(
            seq: try row.decode(forColumn: "seq"),
            id: try row.decode(forColumn: "id"),
            endpoint: try row.decode(forColumn: "endpoint"),
            source: try required("source", value("source", as: RequestSource.self)),
            inputPath: try row.decode(forColumn: "input_path"),
            claimToken: try row.decode(forColumn: "claim_token"),
            payloadBytes: try row.decode(forColumn: "payload_bytes"),
            contentType: try row.decode(forColumn: "content_type"),
            accept: try row.decode(forColumn: "accept"),
            customAttributes: try row.decode(forColumn: "custom_attributes"),
            ttlSeconds: try row.decode(forColumn: "ttl_seconds"),
            timeoutSeconds: try row.decode(forColumn: "timeout_seconds"),
            maxAttempts: try row.decode(forColumn: "max_attempts"),
            state: try required("state", value("state", as: RequestState.self)),
            receivedAt: try required("received_at", date("received_at")),
            startedAt: try date("started_at"),
            finishedAt: try date("finished_at"),
            attempts: try row.decode(forColumn: "attempts"),
            bytesProcessed: try row.decode(forColumn: "bytes_processed"),
            outputLocation: try row.decode(forColumn: "output_location"),
            failureLocation: try row.decode(forColumn: "failure_location"),
            failureCode: try value("failure_code", as: FailureCode.self),
            failureReason: try row.decode(forColumn: "failure_reason"),
            evidence: try ModelEvidence(row: row),
            owner: try row.decode(forColumn: "owner"),
            notified: try row.decode(forColumn: "notified")
        )
    }
}

extension ModelEvidence {
    /// The evidence columns of a row, or nil when the row has none.
    init?(row: Row) throws {
        let exitStatus: Int32? = try row.decode(forColumn: "exit_status")
        let signal: Int32? = try row.decode(forColumn: "signal")
        let httpStatus: Int? = try row.decode(forColumn: "http_status")
        let tail: String? = try row.decode(forColumn: "evidence_tail")
        if exitStatus == nil, signal == nil, httpStatus == nil, tail == nil { return nil }
        self.init(exitStatus: exitStatus, signal: signal, httpStatus: httpStatus, tail: tail)
    }

    /// `exit_status = ?, signal = ?, http_status = ?, evidence_tail = ?` for an UPDATE
    /// (all NULL for no evidence).
    static func assignments(_ evidence: ModelEvidence?) -> SQL {
        """
        exit_status = \(evidence?.exitStatus), signal = \(evidence?.signal),
        http_status = \(evidence?.httpStatus), evidence_tail = \(evidence?.tail)
        """
    }
}
