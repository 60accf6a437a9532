import Foundation
import HTTPTypes
import Hummingbird
import SpoolCore
import SpoolDaemon

/// One `POST /endpoints/{EndpointName}/async-invocations`, read from its headers and checked
/// with the bounds SageMaker documents for InvokeEndpointAsync.
struct InvokeEndpointAsyncRequest: Sendable, Equatable {
    var endpoint: String
    var metadata: RequestMetadata
    /// `X-Amzn-SageMaker-InputLocation`; nil when the payload is the request body.
    var inputLocation: String?
    /// `X-Amzn-SageMaker-S3OutputPathExtension`: folders under the endpoint's outputs and errors.
    var outputPathExtension: String?
    /// `X-Amzn-SageMaker-Filename`: the result's name instead of the InferenceId.
    var filename: String?

    /// Where the result goes: `outputs/<extension>/<filename or InferenceId>.out`.
    var placement: OutputPlacement { OutputPlacement(pathExtension: outputPathExtension, filename: filename) }

    /// The largest inline body (no InputLocation), as SageMaker's synchronous InvokeEndpoint
    /// limits small payloads; larger payloads go through InputLocation.
    static let maxInlineBytes = 128_000

    /// Reads and validates the headers.
    /// - Throws: a ValidationError naming the first bad field.
    static func parse(endpoint: String, headers: HTTPFields) throws(APIError) -> InvokeEndpointAsyncRequest {
        guard endpoint.utf8.count <= 63, isEndpointName(endpoint) else {
            throw .validation("EndpointName \"\(endpoint)\" must be 1 to 63 letters, digits and inner hyphens")
        }
        func integer(_ name: HTTPField.Name, _ field: String) throws(APIError) -> Int? {
            guard let text = headers[name] else { return nil }
            guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
                throw .validation("\(field) must be a whole number, got \"\(text)\"")
            }
            return value
        }
        let metadata = RequestMetadata(
            contentType: headers[.sageMakerContentType], accept: headers[.sageMakerAccept],
            customAttributes: headers[.sageMakerCustomAttributes], inferenceId: headers[.sageMakerInferenceId],
            requestTTLSeconds: try integer(.sageMakerRequestTTLSeconds, "RequestTTLSeconds"),
            invocationTimeoutSeconds: try integer(.sageMakerInvocationTimeoutSeconds, "InvocationTimeoutSeconds")
        )
        if let reason = metadata.validationError() { throw .validation(reason) }
        let input = headers[.sageMakerInputLocation]
        if let input, input.isEmpty || input.utf8.count > 1024 {
            throw .validation("InputLocation must be 1 to 1024 characters long")
        }
        let fileExtension = headers[.sageMakerS3OutputPathExtension]
        if let fileExtension,
           fileExtension.utf8.count > 512 || fileExtension.hasPrefix("s3:") || fileExtension.hasPrefix("https:")
            || !consists(of: fileExtension, allowed: { isAlphanumeric($0) || "!_.*'()/-".utf8.contains($0) }) {
            throw .validation("S3OutputPathExtension must be 1 to 512 characters of letters, digits and !_.*'()/-")
        }
        if let reason = OutputPlacement(pathExtension: fileExtension).validationError() { throw .validation(reason) }
        let filename = headers[.sageMakerFilename]
        if let filename,
           filename.utf8.count > 32 || filename.filter({ $0 == "." }).count > 1
            || !consists(of: filename, firstAllowed: isAlphanumeric, allowed: { isAlphanumeric($0) || "_.-".utf8.contains($0) }) {
            throw .validation("Filename must be 1 to 32 letters, digits, -, _ and at most one dot, starting with a letter or digit")
        }
        return InvokeEndpointAsyncRequest(
            endpoint: endpoint, metadata: metadata, inputLocation: input,
            outputPathExtension: fileExtension, filename: filename
        )
    }
}

// The header checks scan bytes: a regular expression built per request (through NSString)
// cost more than the rest of the parse.

/// An ASCII letter or digit.
private func isAlphanumeric(_ byte: UInt8) -> Bool {
    (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
        || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
}

/// `text` is not empty, its first byte is `firstAllowed` (by default `allowed`) and every other
/// one `allowed`.
private func consists(of text: String, firstAllowed: ((UInt8) -> Bool)? = nil, allowed: (UInt8) -> Bool) -> Bool {
    guard let first = text.utf8.first, firstAllowed?(first) ?? allowed(first) else { return false }
    return text.utf8.dropFirst().allSatisfy(allowed)
}

/// SageMaker's endpoint names: `^[a-zA-Z0-9](-*[a-zA-Z0-9])*$` (letters, digits, inner hyphens).
func isEndpointName(_ name: String) -> Bool {
    consists(of: name, firstAllowed: isAlphanumeric, allowed: { isAlphanumeric($0) || $0 == UInt8(ascii: "-") })
        && name.utf8.last != UInt8(ascii: "-")
}

/// The 202 answer: both locations as headers, the id as the JSON body.
struct InvocationAccepted: Encodable {
    var InferenceId: String

    static func response(id: String, output: String, failure: String) -> Response {
        APIResponse.json(
            InvocationAccepted(InferenceId: id), status: .accepted,
            headers: [.sageMakerOutputLocation: output, .sageMakerFailureLocation: failure]
        )
    }
}
