import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SpoolCore

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
    /// With `[http] access_key_id` and `secret_access_key`: SigV4 signatures are verified.
    var credentials: AWSCredentials? = nil

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard token != nil || credentials != nil, request.uri.path != "/ping" else { return try await next(request, context) }
        let isS3 = S3API.isS3(request)
        let header = request.headers[.authorization]
        if StatusPageRoutes.isPage(request.uri.path) && !isS3 {
            // A browser: HTTP Basic with the token or the secret access key as the password.
            let passwords = [token, credentials?.secretAccessKey].compactMap { $0 }
            guard passwords.contains(where: { Self.checkBasic(header, token: $0) }) || token.map({ Self.check(header, token: $0) == nil }) == true else {
                return StatusPageRoutes.challenge()
            }
            return try await next(request, context)
        }
        let query = Query(request.uri.query ?? "")
        if let credentials, SigV4.isSigned(request, query: query) || token == nil {
            return try await verified(request, context: context, credentials: credentials, query: query, isS3: isS3, next: next)
        }
        if let token, let error = Self.check(header, token: token) {
            if isS3 { return S3Error.accessDenied(error.message).response(requestID: S3Error.newRequestID(), head: request.method == .head) }
            throw error
        }
        return try await next(request, context)
    }

    /// Verifies the request's SigV4 signature, then hands it on (with its body read into memory
    /// when the signature covers a body whose hash it does not state: the SageMaker API's small
    /// inline payloads).
    private func verified(
        _ request: Request, context: Context, credentials: AWSCredentials, query: Query, isS3: Bool,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let read = BodyBox()
        do {
            try await SigV4(credentials: credentials).verify(request, query: query) {
                var collected = ByteBuffer()
                for try await chunk in request.body {
                    var chunk = chunk
                    collected.writeBuffer(&chunk)
                    if collected.readableBytes > 1 << 20 {
                        throw SigV4.Failure.malformed("a signed body over 1 MiB without x-amz-content-sha256")
                    }
                }
                read.buffer = collected
                return collected.withUnsafeReadableBytes { SigV4.sha256Hex(Array($0)) }
            }
        } catch let failure as SigV4.Failure {
            let (code, message, sageMakerType): (String, String, String) = switch failure {
            case .missing: ("AccessDenied", "The request is not signed; Spool verifies AWS Signature Version 4 ([http] access_key_id).", "MissingAuthenticationTokenException")
            case .malformed(let what): ("AuthorizationHeaderMalformed", "The signature is malformed: \(what).", "IncompleteSignatureException")
            case .unknownKey: ("InvalidAccessKeyId", "The access key id is not the one in [http] access_key_id.", "UnrecognizedClientException")
            case .mismatch: ("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.", "InvalidSignatureException")
            case .expired(let why): ("AccessDenied", "Request has expired: \(why).", "InvalidSignatureException")
            }
            if isS3 {
                let error = S3Error(status: .forbidden, code: code, message: message)
                return error.response(requestID: S3Error.newRequestID(), head: request.method == .head)
            }
            throw APIError(.forbidden, sageMakerType, message)
        }
        var request = request
        if let buffer = read.buffer { request.body = RequestBody(buffer: buffer) }
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

    /// Whether `header` is HTTP Basic credentials whose password is `token` (the status page's
    /// way in from a browser; the user name is not checked).
    static func checkBasic(_ header: String?, token: String) -> Bool {
        guard let header = header?.trimmingCharacters(in: .whitespaces), header.lowercased().hasPrefix("basic "),
              let decoded = Data(base64Encoded: String(header.dropFirst("basic ".count)).trimmingCharacters(in: .whitespaces)),
              let colon = decoded.firstIndex(of: UInt8(ascii: ":"))
        else { return false }
        return constantTimeEqual(Array(decoded[decoded.index(after: colon)...]), Array(token.utf8))
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

/// A request body read while its signature was checked.
final class BodyBox: @unchecked Sendable {
    var buffer: ByteBuffer?
}
