/// Why a request did not succeed: the codes written to markers, events and the ledger.
public enum FailureCode: String, Sendable, Codable, CaseIterable {
    case modelError = "ModelError"
    case invocationTimeout = "InvocationTimeout"
    case expired = "Expired"
    case payloadTooLarge = "PayloadTooLarge"
    case invalidRequest = "InvalidRequest"
    case cancelled = "Cancelled"
    case inputUnreadable = "InputUnreadable"
    case outputWriteFailed = "OutputWriteFailed"
    case noCapacity = "NoCapacity"
}

/// What the model showed when it failed: exit status or HTTP status, and the tail of what it said.
public struct ModelEvidence: Sendable, Codable, Equatable {
    /// Exit status of a command model.
    public var exitStatus: Int32?
    /// Signal that ended a command model.
    public var signal: Int32?
    /// HTTP status of a served model.
    public var httpStatus: Int?
    /// The last 4 KiB of the model's stderr or response body, as text.
    public var tail: String?

    public init(exitStatus: Int32? = nil, signal: Int32? = nil, httpStatus: Int? = nil, tail: String? = nil) {
        self.exitStatus = exitStatus
        self.signal = signal
        self.httpStatus = httpStatus
        self.tail = tail
    }

    public static let tailBytes = 4096

    /// The last `tailBytes` of `bytes`, decoded leniently.
    public static func tail<C: Collection<UInt8>>(of bytes: C) -> String {
        String(decoding: bytes.suffix(tailBytes), as: UTF8.self)
    }
}

/// A failed attempt as data: the code, one human sentence, and the model's evidence.
public struct Failure: Sendable, Equatable, Error {
    public var code: FailureCode
    public var reason: String
    public var evidence: ModelEvidence?
    /// Whether another attempt may succeed (a crash, a 5xx, a refused connection).
    public var retryable: Bool

    public init(_ code: FailureCode, _ reason: String, evidence: ModelEvidence? = nil, retryable: Bool = false) {
        self.code = code
        self.reason = reason
        self.evidence = evidence
        self.retryable = retryable
    }
}
