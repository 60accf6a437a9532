import Foundation

/// How a request entered the spool.
public enum RequestSource: String, Sendable, Codable {
    /// A file dropped into an endpoint's `incoming/` folder.
    case drop
    /// `spool invoke`.
    case invoke
    /// The HTTP API.
    case http
}

/// One request as the ledger records it.
public struct InferenceRequest: Sendable, Codable, Equatable {
    /// Arrival order, assigned by the ledger; FIFO claiming follows it.
    public var seq: Int64
    /// The InferenceId: given by the user, or generated (a ULID).
    public var id: String
    public var endpoint: String
    public var source: RequestSource
    /// The payload's path relative to the endpoint's `incoming/` folder (or the name given to `invoke`).
    public var inputPath: String
    /// The claim's token: the claimed payload lives in `.spool/claimed/<endpoint>/<token>/<inputPath>`.
    public var claimToken: String
    public var payloadBytes: Int64
    public var contentType: String?
    public var accept: String?
    public var customAttributes: String?
    public var ttlSeconds: Int
    public var timeoutSeconds: Int
    public var maxAttempts: Int
    public var state: RequestState
    public var receivedAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    /// Attempts started; an attempt interrupted by shutdown or crash is given back.
    public var attempts: Int
    /// Bytes of payload the model has consumed in the current attempt.
    public var bytesProcessed: Int64
    /// Where the output appears, relative to the spool root.
    public var outputLocation: String
    /// Where the error marker appears, relative to the spool root.
    public var failureLocation: String
    public var failureCode: FailureCode?
    public var failureReason: String?
    public var evidence: ModelEvidence?
    /// The process running it (`running` only).
    public var owner: String?
    /// Whether the finished-notification was delivered to `events.jsonl`.
    public var notified: Bool

    public init(
        seq: Int64 = 0, id: String, endpoint: String, source: RequestSource, inputPath: String,
        claimToken: String, payloadBytes: Int64, contentType: String? = nil, accept: String? = nil,
        customAttributes: String? = nil, ttlSeconds: Int, timeoutSeconds: Int, maxAttempts: Int,
        state: RequestState = .queued, receivedAt: Date, startedAt: Date? = nil, finishedAt: Date? = nil,
        attempts: Int = 0, bytesProcessed: Int64 = 0, outputLocation: String, failureLocation: String,
        failureCode: FailureCode? = nil, failureReason: String? = nil, evidence: ModelEvidence? = nil,
        owner: String? = nil, notified: Bool = false
    ) {
        self.seq = seq
        self.id = id
        self.endpoint = endpoint
        self.source = source
        self.inputPath = inputPath
        self.claimToken = claimToken
        self.payloadBytes = payloadBytes
        self.contentType = contentType
        self.accept = accept
        self.customAttributes = customAttributes
        self.ttlSeconds = ttlSeconds
        self.timeoutSeconds = timeoutSeconds
        self.maxAttempts = maxAttempts
        self.state = state
        self.receivedAt = receivedAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.attempts = attempts
        self.bytesProcessed = bytesProcessed
        self.outputLocation = outputLocation
        self.failureLocation = failureLocation
        self.failureCode = failureCode
        self.failureReason = failureReason
        self.evidence = evidence
        self.owner = owner
        self.notified = notified
    }

    /// The claimed payload's path relative to the spool root.
    public var claimedPayloadPath: String {
        "\(SpoolLayout.claimedDirectory)/\(endpoint)/\(claimToken)/\(inputPath)"
    }

    /// The claim's folder relative to the spool root (payload, sidecar).
    public var claimDirectory: String {
        "\(SpoolLayout.claimedDirectory)/\(endpoint)/\(claimToken)"
    }
}
