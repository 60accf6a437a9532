import Foundation

/// One failed attempt of a request, as the ledger keeps it in the row's history
/// (`requests.attempt_errors`, a JSON array, oldest first).
///
/// A request retried after a retryable failure, or by `spool retry`, keeps the errors of its
/// earlier attempts, so `spool status ID` can show why each one failed.
public struct AttemptError: Sendable, Equatable, Codable {
    /// The attempt's number (1 for the first claim since admission or the last `retry`).
    public var attempt: Int
    /// When the attempt ended.
    public var at: Date
    public var code: FailureCode
    public var reason: String
    public var evidence: ModelEvidence?
    /// Whether the failure sent the request back to the queue.
    public var requeued: Bool

    public init(attempt: Int, at: Date, code: FailureCode, reason: String, evidence: ModelEvidence? = nil, requeued: Bool) {
        self.attempt = attempt
        self.at = at
        self.code = code
        self.reason = reason
        self.evidence = evidence
        self.requeued = requeued
    }

    private enum CodingKeys: String, CodingKey {
        case attempt, at, code, reason, evidence, requeued
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        attempt = try container.decode(Int.self, forKey: .attempt)
        at = Date(millisecondsSince1970: try container.decode(Int64.self, forKey: .at))
        code = try container.decode(FailureCode.self, forKey: .code)
        reason = try container.decode(String.self, forKey: .reason)
        evidence = try container.decodeIfPresent(ModelEvidence.self, forKey: .evidence)
        requeued = try container.decode(Bool.self, forKey: .requeued)
    }

    /// `at` is written as milliseconds since 1970, like the ledger's time columns.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(attempt, forKey: .attempt)
        try container.encode(at.millisecondsSince1970, forKey: .at)
        try container.encode(code, forKey: .code)
        try container.encode(reason, forKey: .reason)
        try container.encodeIfPresent(evidence, forKey: .evidence)
        try container.encode(requeued, forKey: .requeued)
    }
}
