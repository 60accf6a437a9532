import CSpoolSystem
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SpoolCore
import SpoolSystem
import Synchronization
import Dispatch

#if canImport(Glibc)
import Glibc
#endif

/// The S3 API on the listener, path-style: `/BUCKET/KEY`. `/endpoints/…`, `/ping`, `/metrics`,
/// `/requests/…` and `/ui/…` are the SageMaker API and the status page; `GET /` is the status
/// page for a browser and ListBuckets for an S3 client (which signs its requests).
struct S3Middleware: RouterMiddleware {
    let api: S3API

    func handle(_ request: Request, context: SpoolRequestContext, next: (Request, SpoolRequestContext) async throws -> Response) async throws -> Response {
        guard S3API.isS3(request) else { return try await next(request, context) }
        return await api.respond(request, eventLoop: context.eventLoop)
    }
}

/// Hummingbird's basic context, plus the connection's event loop (a streamed response paces
/// itself by it).
struct SpoolRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let eventLoop: any EventLoop

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        eventLoop = source.channel.eventLoop
    }
}

struct S3API: Sendable {
    let store: S3Store
    let logger: Logger

    /// The first path segments that belong to the SageMaker API and the status page.
    static let reserved: Set<String> = ["endpoints", "ping", "metrics", "requests", "ui"]

    static func isS3(_ request: Request) -> Bool {
        let path = request.uri.path
        if path == "/" || path.isEmpty {
            // A browser asks for the status page; an S3 client signs (or at least dates) its request.
            let authorization = request.headers[.authorization] ?? ""
            return authorization.hasPrefix("AWS4-") || request.headers[.amzDate] != nil || request.headers[.amzContentSHA256] != nil
        }
        let first = path.dropFirst().prefix { $0 != "/" }
        return !reserved.contains(String(first))
    }

    func respond(_ request: Request, eventLoop: any EventLoop) async -> Response {
        let requestID = S3Error.newRequestID()
        var response: Response
        do {
            response = try await dispatch(request, eventLoop: eventLoop)
        } catch let error as S3Error {
            if error.status.code >= 500 { logger.warning("S3 request failed", metadata: ["spool.s3.error": "\(error.message)"]) }
            response = error.response(requestID: requestID, head: request.method == .head)
        } catch {
            response = S3Error.internalError("\(error)").response(requestID: requestID, head: request.method == .head)
        }
        response.headers[.amzRequestID] = requestID
        return response
    }

    // MARK: Dispatch

    private func dispatch(_ request: Request, eventLoop: any EventLoop) async throws -> Response {
        let query = Query(request.uri.query ?? "")
        let path = request.uri.path
        let trimmed = path.hasPrefix("/") ? String(path.dropFirst()) : path
        let bucketName = String(trimmed.prefix { $0 != "/" })
        let rawKey = trimmed.count > bucketName.count ? String(trimmed.dropFirst(bucketName.count + 1)) : ""
        guard let key = rawKey.removingPercentEncoding, let bucketName = bucketName.removingPercentEncoding else {
            throw S3Error(status: .badRequest, code: "InvalidURI", message: "The path is not valid percent-encoding.")
        }
        if bucketName.isEmpty {
            guard request.method == .get else { throw Self.notImplemented(request) }
            return listBuckets()
        }
        if key.isEmpty {
            return try await bucketOperation(request, bucketName, query)
        }
        let bucket = try store.bucket(bucketName)
        switch request.method {
        case .get, .head:
            if query["uploadId"] != nil { throw Self.notImplemented(request, "ListParts") }
            // Opening may compute the ETag of a large file the first time: off the concurrency pool.
            return try await BlockingWork.shared.run { try self.getObject(request, bucket, key, head: request.method == .head, eventLoop: eventLoop) }
        case .put:
            if request.headers[.amzCopySource] != nil { throw Self.notImplemented(request, "CopyObject") }
            if let uploadID = query["uploadId"], let number = query["partNumber"] {
                return try await uploadPart(request, bucket, key, uploadID: uploadID, partNumber: number)
            }
            return try await putObject(request, bucket, key)
        case .post:
            if query.has("uploads") { return try createUpload(bucket, key) }
            if let uploadID = query["uploadId"] { return try await completeUpload(request, bucket, key, uploadID: uploadID) }
            throw Self.notImplemented(request)
        case .delete:
            if let uploadID = query["uploadId"] { return try await abortUpload(bucket, key, uploadID: uploadID) }
            try store.delete(key, in: bucket)
            return Response(status: .noContent)
        default:
            throw Self.notImplemented(request)
        }
    }

    static func notImplemented(_ request: Request, _ operation: String? = nil) -> S3Error {
        S3Error(status: .notImplemented, code: "NotImplemented",
                message: "\(operation ?? "\(request.method) \(request.uri.path)") is not implemented by Spool's S3 API.")
    }

    // MARK: Buckets

    private func listBuckets() -> Response {
        let created = S3Time.iso(Date(timeIntervalSince1970: 0))
        let buckets = store.buckets.keys.sorted().map {
            "<Bucket>" + XML.element("Name", $0) + XML.element("CreationDate", created) + "</Bucket>"
        }.joined()
        let owner = "<Owner><ID>spool</ID><DisplayName>spool</DisplayName></Owner>"
        return Self.xml(XML.document("ListAllMyBucketsResult", [], raw: owner + "<Buckets>\(buckets)</Buckets>", namespaced: true))
    }

    private func bucketOperation(_ request: Request, _ name: String, _ query: Query) async throws -> Response {
        if request.method == .put {
            guard store.buckets[name] != nil else {
                throw S3Error.accessDenied("Spool's buckets are the [buckets] of spool.toml (\(store.buckets.keys.sorted().joined(separator: ", "))); add \(name) there to create it.")
            }
            return Response(status: .ok, headers: [.location: "/\(name)"])
        }
        let bucket = try store.bucket(name)
        switch request.method {
        case .head:
            return Response(status: .ok, headers: [.amzBucketRegion: "us-east-1"])
        case .get:
            if query.has("location") {
                return Self.xml(XML.document("LocationConstraint", [], namespaced: true))
            }
            if query.has("uploads") {
                return Self.xml(XML.document("ListMultipartUploadsResult", [("Bucket", name)], namespaced: true))
            }
            return try await BlockingWork.shared.run { try self.listObjects(bucket, query) }
        case .post where query.has("delete"):
            return try await deleteObjects(request, bucket)
        case .delete:
            throw S3Error(status: .conflict, code: "BucketNotEmpty", message: "Spool's buckets are folders of spool.toml; they are not deleted through the API.")
        default:
            throw Self.notImplemented(request)
        }
    }

    private func listObjects(_ bucket: S3Store.Bucket, _ query: Query) throws -> Response {
        let prefix = query["prefix"] ?? ""
        let delimiter = query["delimiter"].flatMap { $0.isEmpty ? nil : $0 }
        let maxKeys = max(0, min(1000, Int(query["max-keys"] ?? "1000") ?? 1000))
        let urlEncoded = query["encoding-type"] == "url"
        let version1 = query["list-type"] != "2"
        let startAfter = version1 ? query["marker"] : query["start-after"]
        var token: String?
        if !version1, let raw = query["continuation-token"] {
            guard let data = Data(base64Encoded: raw), let decoded = String(data: data, encoding: .utf8) else {
                throw S3Error(status: .badRequest, code: "InvalidArgument", message: "The continuation token is not valid.")
            }
            token = decoded
        }
        let after = [startAfter, token].compactMap { $0 }.max { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let entries = store.list(bucket, prefix: prefix, after: after, limit: Int.max)
        var contents: [S3Store.Entry] = []
        var prefixes: [String] = []
        var last: String?
        var truncated = false
        for entry in entries {
            // Keys inside a common prefix already returned on an earlier page are skipped.
            if let token, let delimiter, token.hasSuffix(delimiter), entry.key.utf8.starts(with: token.utf8) { continue }
            var commonPrefix: String?
            if let delimiter {
                let rest = entry.key.utf8.dropFirst(prefix.utf8.count)
                let pattern = Array(delimiter.utf8)
                var index = rest.startIndex
                while index < rest.endIndex {
                    if rest[index...].starts(with: pattern) {
                        let end = entry.key.utf8.index(index, offsetBy: pattern.count)
                        commonPrefix = String(decoding: entry.key.utf8[..<end], as: UTF8.self)
                        break
                    }
                    index = rest.index(after: index)
                }
            }
            if let commonPrefix, prefixes.last == commonPrefix { continue }
            if contents.count + prefixes.count == maxKeys {
                truncated = true
                break
            }
            if let commonPrefix {
                prefixes.append(commonPrefix)
                last = commonPrefix
            } else {
                contents.append(entry)
                last = entry.key
            }
        }
        func encode(_ text: String) -> String { urlEncoded ? Self.urlEncode(text) : text }
        var fields: [(String, String)] = [("Name", bucket.name), ("Prefix", encode(prefix))]
        if version1 {
            // ListObjects (version 1): Marker in, NextMarker out.
            fields.append(("Marker", encode(startAfter ?? "")))
            if truncated, let last { fields.append(("NextMarker", encode(last))) }
        } else {
            fields.append(("KeyCount", "\(contents.count + prefixes.count)"))
        }
        fields.append(("MaxKeys", "\(maxKeys)"))
        if let delimiter { fields.append(("Delimiter", encode(delimiter))) }
        fields.append(("IsTruncated", truncated ? "true" : "false"))
        if !version1, let raw = query["continuation-token"] { fields.append(("ContinuationToken", raw)) }
        if !version1, truncated, let last { fields.append(("NextContinuationToken", Data(last.utf8).base64EncodedString())) }
        if !version1, let startAfter { fields.append(("StartAfter", encode(startAfter))) }
        if urlEncoded { fields.append(("EncodingType", "url")) }
        var raw = ""
        for entry in contents {
            let fd = open(entry.path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
            var etag = "\"\""
            if fd >= 0 {
                var info = stat()
                if fstat(fd, &info) == 0 { etag = ETagCache.etag(fd: fd, info: info) }
                close(fd)
            }
            raw += "<Contents>" + XML.element("Key", encode(entry.key)) + XML.element("LastModified", S3Time.iso(entry.modified))
                + XML.element("ETag", etag) + XML.element("Size", "\(entry.size)") + XML.element("StorageClass", "STANDARD") + "</Contents>"
        }
        for commonPrefix in prefixes {
            raw += "<CommonPrefixes>" + XML.element("Prefix", encode(commonPrefix)) + "</CommonPrefixes>"
        }
        return Self.xml(XML.document("ListBucketResult", fields, raw: raw, namespaced: true))
    }

    private func deleteObjects(_ request: Request, _ bucket: S3Store.Bucket) async throws -> Response {
        let body = try await Self.smallBody(request)
        var deleted = ""
        var errors = ""
        for key in XML.values("Key", in: body) {
            do {
                try store.delete(key, in: bucket)
                deleted += "<Deleted>" + XML.element("Key", key) + "</Deleted>"
            } catch {
                errors += "<Error>" + XML.element("Key", key) + XML.element("Code", error.code) + XML.element("Message", error.message) + "</Error>"
            }
        }
        return Self.xml(XML.document("DeleteResult", [], raw: deleted + errors, namespaced: true))
    }

    // MARK: Objects

    private func getObject(_ request: Request, _ bucket: S3Store.Bucket, _ key: String, head: Bool, eventLoop: any EventLoop) throws -> Response {
        guard let (fd, info) = try store.openObject(key, in: bucket) else { throw S3Error.noSuchKey(bucket.name, key) }
        let etag = ETagCache.etag(fd: fd, info: info)
        let size = Int64(info.st_size)
        var headers: HTTPFields = [
            .eTag: etag, .lastModified: S3Time.http(Date(timespec: info.st_mtim)), .acceptRanges: "bytes",
            .contentType: "binary/octet-stream",
        ]
        if let match = request.headers[.ifMatch], !Self.matches(match, etag) {
            close(fd)
            throw S3Error(status: .preconditionFailed, code: "PreconditionFailed", message: "At least one of the preconditions you specified did not hold.", resource: "/\(bucket.name)/\(key)")
        }
        if let noneMatch = request.headers[.ifNoneMatch], Self.matches(noneMatch, etag) {
            close(fd)
            return Response(status: .notModified, headers: [.eTag: etag])
        }
        var first: Int64 = 0
        var length = size
        var status = HTTPResponse.Status.ok
        if let range = request.headers[.range], let parsed = Self.parseRange(range, size: size) {
            guard let (start, end) = parsed else {
                close(fd)
                throw S3Error(status: .rangeNotSatisfiable, code: "InvalidRange", message: "The requested range is not satisfiable (the object has \(size) bytes).", resource: "/\(bucket.name)/\(key)")
            }
            first = start
            length = end - start + 1
            status = .partialContent
            headers[.contentRange] = "bytes \(start)-\(end)/\(size)"
        } else if request.headers[.amzChecksumMode]?.uppercased() == "ENABLED", let stored = ChecksumCache.load(fd: fd, info: info),
                  let algorithm = BodyChecksums.Algorithm(rawValue: stored.algorithm), let name = HTTPField.Name(algorithm.header) {
            headers[name] = stored.value
        }
        headers[.contentLength] = "\(length)"
        if head {
            close(fd)
            return Response(status: status, headers: headers)
        }
        let handle = FileBox(fd)
        let (start, count) = (first, length)
        let body = ResponseBody(contentLength: Int(length)) { writer in
            defer { handle.close() }
            var offset = start
            var unpaced = 0
            let end = start + count
            while offset < end {
                // 64 KiB at a time (the channel's write buffer holds about as much): enough to keep
                // the socket busy, little held per connection.
                let want = Int(min(Int64(64 << 10), end - offset))
                var buffer = ByteBufferAllocator().buffer(capacity: want)
                let n = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: want) { bytes in
                    max(0, pread(handle.fd, bytes.baseAddress, want, off_t(offset)))
                }
                guard n > 0 else { throw S3Error.internalError("The object was cut short while it was read.") }
                offset += Int64(n)
                try await writer.write(buffer)
                // The writer hands each buffer to the event loop and returns; it waits only once
                // the channel has said it is full, which the event loop says only after running
                // the writes queued before. Reading a file is faster than a socket, so without
                // a round trip megabytes of buffers queue per connection (30 MiB over boto3's
                // ten ranged GETs). One every 256 KiB bounds what is in flight to about that.
                unpaced += n
                if unpaced >= 256 << 10 {
                    unpaced = 0
                    try await eventLoop.submit {}.get()
                }
            }
            try await writer.finish(nil)
        }
        return Response(status: status, headers: headers, body: body)
    }

    private func putObject(_ request: Request, _ bucket: S3Store.Bucket, _ key: String) async throws -> Response {
        _ = try store.components(of: key, in: bucket)
        let staged = try store.stagingFile(for: bucket)
        let received: Received
        do {
            received = try await Self.receive(request, into: staged.fd)
        } catch {
            close(staged.fd)
            unlinkat(staged.directory, staged.name, 0)
            close(staged.directory)
            throw error
        }
        let etag = "\"\(received.md5.hex)\""
        if let checksum = received.checksum {
            var info = stat()
            fstat(staged.fd, &info)
            ChecksumCache.store(checksum, fd: staged.fd)
        }
        let store = self.store
        try await BlockingWork.shared.run { try store.publish(staged: staged, as: key, in: bucket, etag: etag) }
        var headers: HTTPFields = [.eTag: etag]
        if let checksum = received.checksum { headers[HTTPField.Name("x-amz-checksum-\(checksum.algorithm)")!] = checksum.value }
        return Response(status: .ok, headers: headers)
    }

    // MARK: Bodies

    struct Received {
        var bytes: Int64
        var md5: [UInt8]
        var checksum: (algorithm: String, value: String)?
    }

    /// Streams the request's body into `fd` (decoding aws-chunked framing), verifying
    /// `Content-MD5`, an `x-amz-checksum-*` header or trailer, and the declared lengths.
    ///
    /// With `limit`, a body longer than that fails before a byte past it is written (a part
    /// written in place must not spill into the next part's bytes).
    static func receive(_ request: Request, into fd: Int32, limit: Int64? = nil) async throws -> Received {
        let headers = request.headers
        if (headers[.amzContentSHA256] ?? "").hasPrefix("STREAMING-AWS4-HMAC-SHA256-PAYLOAD") {
            // Chunk signatures are not verified, so such a body would be covered by no signature.
            throw S3Error(status: .notImplemented, code: "NotImplemented",
                          message: "Signed aws-chunked bodies (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) are not supported; send UNSIGNED-PAYLOAD, a payload hash, or STREAMING-UNSIGNED-PAYLOAD-TRAILER (botocore's default).")
        }
        let chunked = (headers[.contentEncoding] ?? "").lowercased().contains("aws-chunked")
            || (headers[.amzContentSHA256] ?? "").hasPrefix("STREAMING-")
        var wanted = Set<BodyChecksums.Algorithm>()
        var expected: [BodyChecksums.Algorithm: String] = [:]
        for algorithm in BodyChecksums.Algorithm.allCases {
            if let value = headers[HTTPField.Name(algorithm.header)!] {
                wanted.insert(algorithm)
                expected[algorithm] = value
            }
        }
        let trailerName = headers[.amzTrailer]?.lowercased().trimmingCharacters(in: .whitespaces)
        if let trailerName, let algorithm = BodyChecksums.Algorithm.allCases.first(where: { $0.header == trailerName }) {
            wanted.insert(algorithm)
        }
        let checksums = BodyChecksums(wanted)
        // A signed request states its body's SHA-256; the body must match it.
        let declaredSHA256 = headers[.amzContentSHA256].flatMap { $0.count == 64 && $0.allSatisfy(\.isHexDigit) ? $0.lowercased() : nil }
        let payloadSHA256 = declaredSHA256 == nil ? nil : EVPDigest.sha256()
        var decoder = chunked ? AWSChunkedDecoder() : nil
        var written: Int64 = 0
        func store(_ bytes: UnsafeRawBufferPointer) throws {
            checksums.update(bytes)
            payloadSHA256?.update(bytes)
            if let limit, written + Int64(bytes.count) > limit {
                throw S3Error(status: .badRequest, code: "IncompleteBody", message: "The body is longer than the \(limit) bytes it declared.")
            }
            do { try SystemCalls.writeAll(fd, bytes) } catch {
                throw S3Error.internalError("The object could not be written: \(error).")
            }
            written += Int64(bytes.count)
        }
        do {
            for try await buffer in request.body {
                if decoder != nil {
                    try decoder!.feed(buffer, store)
                } else {
                    try buffer.withUnsafeReadableBytes(store)
                }
            }
            try decoder?.finish()
        } catch let error as S3Error {
            throw error
        } catch let error as AWSChunkedDecoder.Failure {
            throw S3Error(status: .badRequest, code: "IncompleteBody", message: "The aws-chunked body is malformed: \(error).")
        } catch {
            throw S3Error(status: .badRequest, code: "IncompleteBody", message: "The body ended early: \(error).")
        }
        if let declared = headers[.amzDecodedContentLength].flatMap(Int64.init), declared != written {
            throw S3Error(status: .badRequest, code: "IncompleteBody", message: "The body has \(written) bytes, not the \(declared) X-Amz-Decoded-Content-Length declares.")
        }
        if let declaredSHA256, let payloadSHA256, payloadSHA256.finish().hex != declaredSHA256 {
            throw S3Error(status: .badRequest, code: "XAmzContentSHA256Mismatch", message: "The provided 'x-amz-content-sha256' header does not match what was computed.")
        }
        let (md5, values) = checksums.finish()
        if let contentMD5 = headers[.contentMD5] {
            guard Data(base64Encoded: contentMD5).map(Array.init) == md5 else { throw S3Error.badDigest("Content-MD5") }
        }
        if let trailerName, let algorithm = BodyChecksums.Algorithm.allCases.first(where: { $0.header == trailerName }) {
            guard let value = decoder?.trailers[trailerName] else {
                throw S3Error(status: .badRequest, code: "InvalidRequest", message: "The trailer \(trailerName) announced in x-amz-trailer did not come.")
            }
            expected[algorithm] = value
        }
        var checksum: (String, String)?
        for (algorithm, value) in expected {
            guard values[algorithm] == value else { throw S3Error.badDigest(algorithm.header) }
            checksum = (algorithm.rawValue, value)
        }
        return Received(bytes: written, md5: md5, checksum: checksum)
    }

    /// The length of the body's data as the request declares it: `X-Amz-Decoded-Content-Length`
    /// for aws-chunked framing, `Content-Length` otherwise.
    static func declaredLength(_ headers: HTTPFields) -> Int64? {
        if let decoded = headers[.amzDecodedContentLength] { return Int64(decoded) }
        let chunked = (headers[.contentEncoding] ?? "").lowercased().contains("aws-chunked")
            || (headers[.amzContentSHA256] ?? "").hasPrefix("STREAMING-")
        return chunked ? nil : headers[.contentLength].flatMap { Int64($0) }
    }

    /// A small XML body (multipart completion, batch delete), at most 1 MiB, checked against
    /// the `x-amz-content-sha256` it was signed with.
    static func smallBody(_ request: Request) async throws -> String {
        var body = ByteBuffer()
        for try await buffer in request.body {
            var buffer = buffer
            body.writeBuffer(&buffer)
            guard body.readableBytes <= 1 << 20 else {
                throw S3Error(status: .badRequest, code: "MalformedXML", message: "The XML body is larger than 1 MiB.")
            }
        }
        if let declared = request.headers[.amzContentSHA256], declared.count == 64, declared.allSatisfy(\.isHexDigit),
           body.withUnsafeReadableBytes({ SigV4.sha256Hex(Array($0)) }) != declared.lowercased() {
            throw S3Error(status: .badRequest, code: "XAmzContentSHA256Mismatch", message: "The provided 'x-amz-content-sha256' header does not match what was computed.")
        }
        return String(buffer: body)
    }

    // MARK: Helpers

    static func xml(_ document: String, status: HTTPResponse.Status = .ok) -> Response {
        APIResponse.text(document, contentType: "application/xml", status: status)
    }

    /// Whether an If-Match / If-None-Match list holds `etag` (or is `*`).
    static func matches(_ header: String, _ etag: String) -> Bool {
        header.split(separator: ",").contains { item in
            let value = item.trimmingCharacters(in: .whitespaces)
            return value == "*" || value == etag || "\"\(value)\"" == etag || value.replacingOccurrences(of: "W/", with: "") == etag
        }
    }

    /// A `Range` header, as S3 reads it (RFC 9110): nil when it is to be ignored (not one
    /// well-formed byte range: the whole object is answered), `.some(nil)` when it cannot be
    /// satisfied (416), else the first and last byte.
    static func parseRange(_ header: String, size: Int64) -> (Int64, Int64)?? {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return nil }
        let spec = header.dropFirst("bytes=".count)
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        if parts[0].isEmpty {
            guard let suffix = Int64(parts[1]) else { return nil }
            guard suffix > 0, size > 0 else { return .some(nil) }
            return (max(0, size - suffix), size - 1)
        }
        guard let start = Int64(parts[0]) else { return nil }
        let last: Int64? = parts[1].isEmpty ? nil : Int64(parts[1])
        if !parts[1].isEmpty && last == nil { return nil }
        if let last, last < start { return nil }
        guard start < size else { return .some(nil) }
        return (start, min(last ?? size - 1, size - 1))
    }

    static func urlEncode(_ text: String) -> String {
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

/// A query string's parameters, percent-decoded (`+` stays a plus, as S3 signs it).
struct Query {
    private var values: [String: String] = [:]

    init(_ query: String) {
        for item in query.split(separator: "&") {
            let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(pair[0]).removingPercentEncoding ?? String(pair[0])
            let value = pair.count > 1 ? (String(pair[1]).removingPercentEncoding ?? String(pair[1])) : ""
            values[name] = value
        }
    }

    subscript(_ name: String) -> String? { values[name] }
    func has(_ name: String) -> Bool { values[name] != nil }
}

/// An open descriptor handed to a response body, closed once.
final class FileBox: @unchecked Sendable {
    let fd: Int32
    private var closed = false
    init(_ fd: Int32) { self.fd = fd }
    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }
    deinit { close() }
}

/// The checksum a client sent with an object, kept with the file (`user.spool.checksum`), so a
/// GET with `x-amz-checksum-mode: ENABLED` returns it.
enum ChecksumCache {
    static let attribute = "user.spool.checksum"

    static func store(_ checksum: (algorithm: String, value: String), fd: Int32) {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return }
        let value = Array("\(ETagCache.key(info)) \(checksum.algorithm) \(checksum.value)".utf8)
        _ = fsetxattr(fd, attribute, value, value.count, 0)
    }

    static func load(fd: Int32, info: stat) -> (algorithm: String, value: String)? {
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = fgetxattr(fd, attribute, &buffer, buffer.count)
        guard count > 0 else { return nil }
        let parts = String(decoding: buffer.prefix(count), as: UTF8.self).split(separator: " ")
        guard parts.count == 3, parts[0] == ETagCache.key(info) else { return nil }
        return (String(parts[1]), String(parts[2]))
    }
}

extension S3Error {
    /// A fresh `x-amz-request-id`: 16 hex digits.
    static func newRequestID() -> String {
        let text = String(UInt64.random(in: 0...UInt64.max), radix: 16, uppercase: true)
        return String(repeating: "0", count: 16 - text.count) + text
    }
}

extension HTTPField.Name {
    static let amzDate = HTTPField.Name("x-amz-date")!
    static let amzContentSHA256 = HTTPField.Name("x-amz-content-sha256")!
    static let amzCopySource = HTTPField.Name("x-amz-copy-source")!
    static let amzTrailer = HTTPField.Name("x-amz-trailer")!
    static let amzDecodedContentLength = HTTPField.Name("x-amz-decoded-content-length")!
    static let amzChecksumMode = HTTPField.Name("x-amz-checksum-mode")!
    static let amzBucketRegion = HTTPField.Name("x-amz-bucket-region")!
    static let contentMD5 = HTTPField.Name("Content-MD5")!
}

/// Threads of their own for the S3 API's long file-system work (a large object's first ETag, a
/// listing's walk, joining parts, flushing an object): the cooperative pool has one thread per
/// core, and a task blocked there for seconds would leave every other task of the daemon short.
/// A few serial queues, taken in turn.
final class BlockingWork: Sendable {
    static let shared = BlockingWork(lanes: 4)

    private let queues: [DispatchQueue]
    private let next = Atomic<Int>(0)

    init(lanes: Int) {
        queues = (0..<max(1, lanes)).map { DispatchQueue(label: "spool.s3.\($0)") }
    }

    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let queue = queues[next.add(1, ordering: .relaxed).oldValue % queues.count]
        return try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }
}
