import Foundation
import SpoolCore
import HTTPTypes
import Hummingbird

#if canImport(Glibc)
import Glibc
#endif

/// An S3 error, answered as S3 answers it: XML with `Code`, `Message`, `Resource` and
/// `RequestId`, the `x-amz-request-id` header, and no body for HEAD.
struct S3Error: Error, Sendable {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    var resource: String = ""

    static func noSuchBucket(_ bucket: String, known: [String]) -> S3Error {
        S3Error(status: .notFound, code: "NoSuchBucket",
                message: "The specified bucket does not exist (the buckets are the [buckets] of spool.toml: \(known.joined(separator: ", "))).",
                resource: "/\(bucket)")
    }

    static func noSuchKey(_ bucket: String, _ key: String) -> S3Error {
        S3Error(status: .notFound, code: "NoSuchKey", message: "The specified key does not exist.", resource: "/\(bucket)/\(key)")
    }

    static func noSuchUpload(_ id: String) -> S3Error {
        S3Error(status: .notFound, code: "NoSuchUpload",
                message: "The specified multipart upload does not exist: it was completed, aborted or removed after 24 hours.",
                resource: id)
    }

    static func invalidKey(_ key: String, _ why: String) -> S3Error {
        S3Error(status: .badRequest, code: "InvalidArgument", message: "The key \(key.debugDescription) \(why).", resource: key)
    }

    static func accessDenied(_ why: String) -> S3Error {
        S3Error(status: .forbidden, code: "AccessDenied", message: why)
    }

    static func badDigest(_ what: String) -> S3Error {
        S3Error(status: .badRequest, code: "BadDigest", message: "The \(what) you specified did not match the calculated checksum.")
    }

    static func internalError(_ why: String) -> S3Error {
        S3Error(status: .internalServerError, code: "InternalError", message: why)
    }

    func response(requestID: String, head: Bool) -> Response {
        var headers: HTTPFields = [.amzRequestID: requestID]
        guard !head else { return Response(status: status, headers: headers) }
        headers[.contentType] = "application/xml"
        let body = XML.document("Error", [
            ("Code", code), ("Message", message), ("Resource", resource), ("RequestId", requestID),
        ])
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }
}

/// XML as S3 writes it, built by hand: elements of text, escaped.
enum XML {
    static let namespace = "http://s3.amazonaws.com/doc/2006-03-01/"

    static func escape(_ text: String) -> String { Markup.escape(text) }

    static func element(_ name: String, _ text: String) -> String {
        "<\(name)>\(escape(text))</\(name)>"
    }

    /// `<root xmlns=…>` with `fields` as text elements, then `raw` (already XML).
    static func document(_ root: String, _ fields: [(String, String)], raw: String = "", namespaced: Bool = false) -> String {
        let attributes = namespaced ? " xmlns=\"\(namespace)\"" : ""
        return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<\(root)\(attributes)>"
            + fields.map { element($0.0, $0.1) }.joined() + raw + "</\(root)>"
    }

    /// The text of every `<name>…</name>` in `xml`, in order (for the small documents clients send).
    static func values(_ name: String, in xml: String) -> [String] {
        var result: [String] = []
        var rest = xml[...]
        while let open = rest.range(of: "<\(name)>"), let close = rest[open.upperBound...].range(of: "</\(name)>") {
            result.append(unescape(String(rest[open.upperBound..<close.lowerBound])))
            rest = rest[close.upperBound...]
        }
        return result
    }

    static func unescape(_ text: String) -> String {
        text.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&#34;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
            .replacingOccurrences(of: "&amp;", with: "&")
    }
}

extension HTTPField.Name {
    static let amzRequestID = HTTPField.Name("x-amz-request-id")!
}

/// S3's time formats: ISO 8601 with milliseconds in XML, RFC 1123 in headers. Formatted by hand
/// (no `DateFormatter`: one per call would load ICU's data and cost more than the request).
enum S3Time {
    static func iso(_ date: Date) -> String {
        Timestamp.string(date)
    }

    static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func http(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var t = tm()
        gmtime_r(&seconds, &t)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(days[Int(t.tm_wday)]), \(two(t.tm_mday)) \(months[Int(t.tm_mon)]) \(t.tm_year + 1900) "
            + "\(two(t.tm_hour)):\(two(t.tm_min)):\(two(t.tm_sec)) GMT"
    }
}
