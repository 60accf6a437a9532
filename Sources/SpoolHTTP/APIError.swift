import Foundation
import HTTPTypes
import Hummingbird

/// An error in SageMaker Runtime's wire format: status, `x-amzn-ErrorType` header and a JSON
/// body `{"__type": TYPE, "message": …}`, which botocore turns into a `ClientError` whose code
/// is `TYPE`.
struct APIError: Error, HTTPResponseError, CustomStringConvertible {
    var status: HTTPResponse.Status
    var type: String
    var message: String

    init(_ status: HTTPResponse.Status, _ type: String, _ message: String) {
        self.status = status
        self.type = type
        self.message = message
    }

    /// 400: the request is malformed or names something that does not exist.
    static func validation(_ message: String) -> APIError {
        APIError(.badRequest, "ValidationError", message)
    }

    /// 500: Spool itself failed.
    static func internalFailure(_ message: String) -> APIError {
        APIError(.internalServerError, "InternalFailure", message)
    }

    /// 503: the queue is full or the daemon is stopping; try again later.
    static func unavailable(_ message: String) -> APIError {
        APIError(.serviceUnavailable, "ServiceUnavailable", message)
    }

    /// 404: an unknown inference id (`GET /requests/{id}`).
    static func notFound(_ message: String) -> APIError {
        APIError(.notFound, "ResourceNotFound", message)
    }

    /// 403 without credentials, as AWS answers an unsigned request.
    static func missingAuthentication() -> APIError {
        APIError(.forbidden, "MissingAuthenticationTokenException",
                 "Missing Authentication Token: send Authorization: Bearer <auth_token>, or sign with the token as access key id.")
    }

    /// 403 with credentials that are not the configured token, as AWS answers an unknown key.
    static func unrecognizedClient() -> APIError {
        APIError(.forbidden, "UnrecognizedClientException", "The security token included in the request is invalid.")
    }

    var description: String { "\(type): \(message)" }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        APIResponse.json(["__type": type, "message": message], status: status, headers: [.amznErrorType: type])
    }
}

/// JSON responses with the encoding the CLI's `--json` uses.
enum APIResponse {
    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func text(_ text: String, contentType: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: contentType], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

extension HTTPField.Name {
    static let amznErrorType = HTTPField.Name("x-amzn-ErrorType")!
    static let sageMakerInputLocation = HTTPField.Name("X-Amzn-SageMaker-InputLocation")!
    static let sageMakerContentType = HTTPField.Name("X-Amzn-SageMaker-Content-Type")!
    static let sageMakerAccept = HTTPField.Name("X-Amzn-SageMaker-Accept")!
    static let sageMakerCustomAttributes = HTTPField.Name("X-Amzn-SageMaker-Custom-Attributes")!
    static let sageMakerInferenceId = HTTPField.Name("X-Amzn-SageMaker-Inference-Id")!
    static let sageMakerRequestTTLSeconds = HTTPField.Name("X-Amzn-SageMaker-RequestTTLSeconds")!
    static let sageMakerInvocationTimeoutSeconds = HTTPField.Name("X-Amzn-SageMaker-InvocationTimeoutSeconds")!
    static let sageMakerS3OutputPathExtension = HTTPField.Name("X-Amzn-SageMaker-S3OutputPathExtension")!
    static let sageMakerFilename = HTTPField.Name("X-Amzn-SageMaker-Filename")!
    static let sageMakerOutputLocation = HTTPField.Name("X-Amzn-SageMaker-OutputLocation")!
    static let sageMakerFailureLocation = HTTPField.Name("X-Amzn-SageMaker-FailureLocation")!
}
