import Foundation
import HTTPTypes
import Hummingbird

/// Answers every error in SageMaker's JSON (`{"__type": …, "message": …}` with
/// `x-amzn-ErrorType`), including those the router raises itself (an unknown path or method),
/// which would otherwise go out with an empty body.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as HTTPError {
            throw APIError(error.status, Self.type(of: error.status), error.body ?? Self.message(error.status, request))
        }
    }

    static func type(of status: HTTPResponse.Status) -> String {
        switch status.code {
        case 404, 405: "UnknownOperationException"
        case 400..<500: "ValidationError"
        case 503: "ServiceUnavailable"
        default: "InternalFailure"
        }
    }

    static func message(_ status: HTTPResponse.Status, _ request: Request) -> String {
        switch status.code {
        case 404, 405: "No operation at \(request.method) \(request.uri.path)."
        default: "\(status.code) \(status.reasonPhrase)"
        }
    }
}
