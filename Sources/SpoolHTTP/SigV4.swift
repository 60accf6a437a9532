import CSpoolSystem
import Foundation
import HTTPTypes
import Hummingbird
import SpoolCore

/// Verifies AWS Signature Version 4, as AWS services do, for both forms clients use: the
/// `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` header, and
/// presigned URLs (`X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`,
/// `X-Amz-SignedHeaders`, `X-Amz-Signature` in the query).
///
/// The canonical request is built from the request as received: the path as sent (S3) or
/// encoded once more (other services, as botocore signs them), the query re-encoded and
/// sorted, the signed headers trimmed, and the payload hash — `x-amz-content-sha256` when sent
/// (S3 then checks the body against it as it streams in), `UNSIGNED-PAYLOAD` for presigned
/// URLs, or the SHA-256 of the body (`payloadHash`) otherwise.
struct SigV4 {
    enum Failure: Error, Equatable {
        /// No signature at all.
        case missing
        /// Not SigV4, or a part of it malformed.
        case malformed(String)
        /// Another access key id.
        case unknownKey
        /// The signature does not match.
        case mismatch
        /// Signed too long ago, or in the future (15 minutes either way), or a presigned URL expired.
        case expired(String)
    }

    let credentials: AWSCredentials
    /// Allowed clock difference.
    var skew: TimeInterval = 15 * 60

    /// Whether the request carries a SigV4 signature in either form (or a SigV2 presigned URL).
    static func isSigned(_ request: Request, query: Query) -> Bool {
        (request.headers[.authorization] ?? "").hasPrefix("AWS4-HMAC-SHA256") || query["X-Amz-Algorithm"] != nil
            || query["AWSAccessKeyId"] != nil
    }

    /// S3's older presigned URLs (`AWSAccessKeyId`, `Expires`, `Signature`: HMAC-SHA1), which
    /// botocore still makes by default for `generate_presigned_url` against a custom endpoint.
    func verifyQueryV2(_ request: Request, query: Query, now: Date) throws {
        guard let key = query["AWSAccessKeyId"], let expires = query["Expires"], let signature = query["Signature"],
              let expiry = TimeInterval(expires) else { throw Failure.malformed("a presigned URL without AWSAccessKeyId, Expires and Signature") }
        guard Self.constantTimeEqual(Array(key.utf8), Array(credentials.accessKeyID.utf8)) else { throw Failure.unknownKey }
        guard now.timeIntervalSince1970 <= expiry else { throw Failure.expired("the presigned URL has expired") }
        // Sub-resources S3 signs, in name order.
        let subresources = ["partNumber", "uploadId", "uploads", "versionId"].compactMap { name in
            query[name].map { $0.isEmpty ? name : "\(name)=\($0)" }
        }
        let resource = request.uri.path + (subresources.isEmpty ? "" : "?" + subresources.joined(separator: "&"))
        let amzHeaders = request.headers.filter { $0.name.canonicalName.hasPrefix("x-amz-") }
            .map { ($0.name.canonicalName, Self.trim($0.value)) }.sorted { $0.0 < $1.0 }.map { "\($0.0):\($0.1)\n" }.joined()
        let stringToSign = [
            request.method.rawValue, request.headers[.contentMD5] ?? "", request.headers[.contentType] ?? "", expires,
        ].joined(separator: "\n") + "\n" + amzHeaders + resource
        var out = [UInt8](repeating: 0, count: 20)
        var length: UInt32 = 20
        let secret = Array(credentials.secretAccessKey.utf8)
        let data = Array(stringToSign.utf8)
        _ = secret.withUnsafeBytes { k in
            data.withUnsafeBytes { d in
                HMAC(EVP_sha1(), k.baseAddress, Int32(secret.count), d.baseAddress?.assumingMemoryBound(to: UInt8.self), data.count, &out, &length)
            }
        }
        let expected = Data(out.prefix(Int(length))).base64EncodedString()
        guard Self.constantTimeEqual(Array(expected.utf8), Array(signature.utf8)) else { throw Failure.mismatch }
    }

    /// The service a request is for, from its signature's scope (`s3`, `sagemaker`), or nil.
    static func service(_ request: Request, query: Query) -> String? {
        let credential = query["X-Amz-Credential"] ?? Self.fields(request.headers[.authorization] ?? "")["Credential"]
        return credential?.split(separator: "/").dropFirst(3).first.map(String.init)
    }

    /// Checks the signature of `request`. `payloadHash` is the hex SHA-256 of the body, needed
    /// only when the request signs its body without saying its hash (non-S3 header form).
    func verify(_ request: Request, query: Query, payloadHash: () async throws -> String, now: Date = Date()) async throws -> Void {
        if query["AWSAccessKeyId"] != nil, query["X-Amz-Algorithm"] == nil {
            return try verifyQueryV2(request, query: query, now: now)
        }
        let presigned = query["X-Amz-Algorithm"] != nil
        let credential: String
        let signedHeaders: [String]
        let signature: String
        let amzDate: String
        if presigned {
            guard query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" else { throw Failure.malformed("X-Amz-Algorithm") }
            guard let c = query["X-Amz-Credential"], let h = query["X-Amz-SignedHeaders"], let s = query["X-Amz-Signature"],
                  let d = query["X-Amz-Date"] else { throw Failure.malformed("a presigned URL without all of its X-Amz- parameters") }
            credential = c
            signedHeaders = h.split(separator: ";").map(String.init)
            signature = s
            amzDate = d
        } else {
            guard let header = request.headers[.authorization], header.hasPrefix("AWS4-HMAC-SHA256 ") else { throw Failure.missing }
            let fields = Self.fields(header)
            guard let c = fields["Credential"], let h = fields["SignedHeaders"], let s = fields["Signature"] else {
                throw Failure.malformed("Authorization without Credential, SignedHeaders and Signature")
            }
            guard let d = request.headers[.amzDate] ?? request.headers[.date] else { throw Failure.malformed("no X-Amz-Date") }
            credential = c
            signedHeaders = h.split(separator: ";").map(String.init)
            signature = s
            amzDate = d
        }
        let scope = credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard scope.count == 5, scope[4] == "aws4_request" else { throw Failure.malformed("Credential \(credential)") }
        guard Self.constantTimeEqual(Array(scope[0].utf8), Array(credentials.accessKeyID.utf8)) else { throw Failure.unknownKey }
        guard let signedAt = Self.parseDate(amzDate), amzDate.hasPrefix(scope[1]) else { throw Failure.malformed("X-Amz-Date \(amzDate)") }
        if presigned {
            guard let expires = query["X-Amz-Expires"].flatMap(Double.init), (1...604_800).contains(expires) else {
                throw Failure.malformed("X-Amz-Expires")
            }
            guard now.timeIntervalSince(signedAt) <= expires, signedAt.timeIntervalSince(now) <= skew else {
                throw Failure.expired("the presigned URL has expired")
            }
        } else {
            guard abs(now.timeIntervalSince(signedAt)) <= skew else {
                throw Failure.expired("the request was signed at \(amzDate), more than 15 minutes from the server's time")
            }
        }
        guard signedHeaders.contains("host") else { throw Failure.malformed("SignedHeaders without host") }
        let service = scope[3]
        let hash: String
        if presigned {
            hash = "UNSIGNED-PAYLOAD"
        } else if service == "s3", let declared = request.headers[.amzContentSHA256] {
            // S3 signs the hash the client states; the S3 API checks the body against it.
            hash = declared
        } else {
            // Other services sign the body itself: its hash is computed here, never taken on trust.
            hash = try await payloadHash()
        }
        var canonicalHeaders = ""
        for name in signedHeaders {
            let value: String
            if name == "host" {
                value = request.head.authority ?? request.headers[HTTPField.Name("host")!] ?? ""
            } else {
                guard let field = HTTPField.Name(name) else { throw Failure.malformed("SignedHeaders \(name)") }
                value = request.headers[values: field].joined(separator: ",")
            }
            canonicalHeaders += name + ":" + Self.trim(value) + "\n"
        }
        let path = request.uri.path.isEmpty ? "/" : request.uri.path
        let canonicalURI = service == "s3" ? path : Self.encode(path, keepSlash: true)
        let canonicalRequest = [
            request.method.rawValue, canonicalURI, Self.canonicalQuery(request.uri.query ?? ""),
            canonicalHeaders, signedHeaders.joined(separator: ";"), hash,
        ].joined(separator: "\n")
        let stringToSign = [
            "AWS4-HMAC-SHA256", amzDate, scope[1...4].joined(separator: "/"), Self.sha256Hex(Array(canonicalRequest.utf8)),
        ].joined(separator: "\n")
        var key = Self.hmac(Array("AWS4\(credentials.secretAccessKey)".utf8), Array(scope[1].utf8))
        key = Self.hmac(key, Array(scope[2].utf8))
        key = Self.hmac(key, Array(scope[3].utf8))
        key = Self.hmac(key, Array("aws4_request".utf8))
        let expected = Self.hmac(key, Array(stringToSign.utf8)).hex
        guard Self.constantTimeEqual(Array(expected.utf8), Array(signature.lowercased().utf8)) else { throw Failure.mismatch }
    }

    // MARK: Pieces

    /// `Credential=…, SignedHeaders=…, Signature=…` of an Authorization header.
    static func fields(_ header: String) -> [String: String] {
        var result: [String: String] = [:]
        let body = header.drop { $0 != " " }
        for part in body.split(separator: ",") {
            let pair = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if pair.count == 2 { result[String(pair[0])] = String(pair[1]) }
        }
        return result
    }

    /// The query as SigV4 signs it: every name and value percent-decoded, then encoded
    /// (unreserved characters only), sorted, without `X-Amz-Signature`.
    static func canonicalQuery(_ query: String) -> String {
        var pairs: [(String, String)] = []
        for item in query.split(separator: "&", omittingEmptySubsequences: true) {
            let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(pair[0]).removingPercentEncoding ?? String(pair[0])
            if name == "X-Amz-Signature" { continue }
            let value = pair.count > 1 ? (String(pair[1]).removingPercentEncoding ?? String(pair[1])) : ""
            pairs.append((encode(name, keepSlash: false), encode(value, keepSlash: false)))
        }
        pairs.sort { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }
        return pairs.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    static func encode(_ text: String, keepSlash: Bool) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(UnicodeScalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                out += "/"
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// A header value with its ends trimmed and inner runs of spaces made one.
    static func trim(_ value: String) -> String {
        value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ").trimmingCharacters(in: .whitespaces)
    }

    /// `yyyyMMdd'T'HHmmss'Z'` (UTC), parsed by hand.
    static func parseDate(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        guard bytes.count == 16, bytes[8] == UInt8(ascii: "T"), bytes[15] == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int32? {
            var value: Int32 = 0
            for byte in bytes[range] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int32(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(4..<6), let day = number(6..<8),
              let hour = number(9..<11), let minute = number(11..<13), let second = number(13..<15),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var t = tm()
        t.tm_year = year - 1900
        t.tm_mon = month - 1
        t.tm_mday = day
        t.tm_hour = hour
        t.tm_min = minute
        t.tm_sec = second
        return Date(timeIntervalSince1970: TimeInterval(timegm(&t)))
    }

    static func sha256Hex(_ bytes: [UInt8]) -> String {
        let digest = EVPDigest.sha256()
        bytes.withUnsafeBytes { digest.update($0) }
        return digest.finish().hex
    }

    static func hmac(_ key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 32
        _ = key.withUnsafeBytes { k in
            data.withUnsafeBytes { d in
                HMAC(EVP_sha256(), k.baseAddress, Int32(key.count), d.baseAddress?.assumingMemoryBound(to: UInt8.self), data.count, &out, &length)
            }
        }
        return Array(out.prefix(Int(length)))
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        AuthorizationMiddleware<SpoolRequestContext>.constantTimeEqual(a, b)
    }
}
