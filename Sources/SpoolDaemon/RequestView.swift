import Foundation
import SpoolCore

/// A request as the CLI's `--json` and the HTTP API show it: SageMaker-style field names,
/// absolute locations, ISO 8601 times.
public struct RequestView: Codable, Sendable, Equatable {
    public var InferenceId: String
    public var EndpointName: String
    public var State: String
    public var InputLocation: String
    public var OutputLocation: String
    public var FailureLocation: String
    public var PayloadBytes: Int64
    public var BytesProcessed: Int64
    public var ContentType: String?
    public var Accept: String?
    public var CustomAttributes: String?
    public var ReceivedTime: String
    public var StartedTime: String?
    public var FinishedTime: String?
    public var Attempts: Int
    public var FailureCode: String?
    public var FailureReason: String?

    public init(_ r: InferenceRequest, publisher: ResultPublisher) {
        let layout = publisher.layout
        InferenceId = r.id
        EndpointName = r.endpoint
        State = r.state.rawValue
        InputLocation = publisher.inputLocation(r)
        OutputLocation = layout.path(r.outputLocation)
        FailureLocation = layout.path(r.failureLocation)
        PayloadBytes = r.payloadBytes
        BytesProcessed = r.state == .succeeded ? r.payloadBytes : r.bytesProcessed
        ContentType = r.contentType
        Accept = r.accept
        CustomAttributes = r.customAttributes
        ReceivedTime = Timestamp.string(r.receivedAt)
        StartedTime = r.startedAt.map(Timestamp.string)
        FinishedTime = r.finishedAt.map(Timestamp.string)
        Attempts = r.attempts
        FailureCode = r.failureCode?.rawValue
        FailureReason = r.failureReason
    }
}
