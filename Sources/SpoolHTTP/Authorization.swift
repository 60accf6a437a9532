import Foundation
import HTTPTypes
import Hummingbird

/// Checks credentials when `[http] auth_token` is set; without a token every request passes
/// (the API then listens on loopback only).
///
/// Accepted: `Authorization: Bearer <token>`, or a SigV4 header whose access key id is the
/// token (`AWS4-HMAC-SHA256 Credential=<token>/…`), which is what boto3 sends when given
/// `aws_access_key_id=<token>`. The SigV4 signature itself is not checked: the token is the
/// secret, so use TLS in front of Spool (a reverse proxy) when it travels a network.
/// `GET /ping` needs no credentials, like a SageMaker container's health check.
struct AuthorizationMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let token, request.uri.path != "/ping" {
            if let error = Self.check(request.headers[.authorization], token: token) { throw error }
        }
        return try await next(request, context)
    }

    /// nil when `header` carries `token`; otherwise the 403 to answer.
    static func check(_ header: String?, token: String) -> APIError? {
        guard let header = header?.trimmingCharacters(in: .whitespaces), !header.isEmpty else {
            return .missingAuthentication()
        }
        let presented: Substring?
        if header.lowercased().hasPrefix("bearer ") {
            presented = header.dropFirst("bearer ".count).drop(while: { $0 == " " })
        } else if header.hasPrefix("AWS4-HMAC-SHA256") {
            presented = accessKeyID(header)
        } else {
            presented = nil
        }
        guard let presented, constantTimeEqual(Array(presented.utf8), Array(token.utf8)) else {
            return .unrecognizedClient()
        }
        return nil
    }

    /// The access key id of a SigV4 header: `Credential=AKID/DATE/REGION/SERVICE/aws4_request`.
    static func accessKeyID(_ header: String) -> Substring? {
        guard let range = header.range(of: "Credential=") else { return nil }
        let credential = header[range.upperBound...].prefix { $0 != "," && $0 != " " }
        guard let slash = credential.firstIndex(of: "/") else { return nil }
        return credential[..<slash]
    }

    /// Compares without stopping at the first difference, so timing reveals nothing of the token.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }
}
