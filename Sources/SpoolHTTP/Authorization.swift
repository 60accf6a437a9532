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
/// `GET /ping` needs no credentials, like a SageMaker container's health check. The status page
/// (`/`, `/ui/…`) also takes HTTP Basic credentials with the token as the password, and answers
/// a browser without them with a Basic challenge (401) instead of SageMaker's JSON 403.
struct AuthorizationMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let token, request.uri.path != "/ping" {
            if StatusPageRoutes.isPage(request.uri.path) {
                guard Self.checkBasic(request.headers[.authorization], token: token) || Self.check(request.headers[.authorization], token: token) == nil else {
                    return StatusPageRoutes.challenge()
                }
            } else if let error = Self.check(request.headers[.authorization], token: token) {
                throw error
            }
        }
        return try await next(request, context)
    }

    /// Whether `header` is HTTP Basic credentials whose password is `token` (the status page's
    /// way in from a browser; the user name is not checked).
    static func checkBasic(_ header: String?, token: String) -> Bool {
        guard let header = header?.trimmingCharacters(in: .whitespaces), header.lowercased().hasPrefix("basic "),
              let decoded = Data(base64Encoded: String(header.dropFirst("basic ".count)).trimmingCharacters(in: .whitespaces)),
              let colon = decoded.firstIndex(of: UInt8(ascii: ":"))
        else { return false }
        return constantTimeEqual(Array(decoded[decoded.index(after: colon)...]), Array(token.utf8))
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
