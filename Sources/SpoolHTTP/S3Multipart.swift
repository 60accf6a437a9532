import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SpoolCore
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// Multipart uploads: each in `.spool/uploads/<UploadId>/` (its bucket and key in `target`, each
/// part as `<n>.<md5 hex>`) until completed — the parts are joined into one
/// staged file and published like a PutObject, so the object appears whole and a drop happens
/// once — or aborted. Uploads left unfinished are removed after 24 hours.
extension S3API {
    static let uploadLifetime: TimeInterval = 24 * 3600
    static let minimumPartBytes: Int64 = 5 * 1024 * 1024

    private var uploads: String { store.layout.path(S3Store.uploadsDirectory) }

    private func uploadFolder(_ id: String, _ bucket: S3Store.Bucket, _ key: String) throws(S3Error) -> String {
        guard id.count == 32, id.allSatisfy(\.isHexDigit) else { throw .noSuchUpload(id) }
        let folder = "\(uploads)/\(id)"
        guard let target = try? String(contentsOfFile: folder + "/target", encoding: .utf8), target == "\(bucket.name)\n\(key)" else {
            throw .noSuchUpload(id)
        }
        return folder
    }

    func createUpload(_ bucket: S3Store.Bucket, _ key: String) throws -> Response {
        _ = try store.components(of: key, in: bucket)
        removeStaleUploads()
        let id = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let folder = "\(uploads)/\(id)"
        do {
            try SystemCalls.makeDirectories(folder)
            try Data("\(bucket.name)\n\(key)".utf8).write(to: URL(fileURLWithPath: folder + "/target"))
        } catch {
            throw S3Error.internalError("The upload could not be started: \(error).")
        }
        return Self.xml(XML.document("InitiateMultipartUploadResult", [("Bucket", bucket.name), ("Key", key), ("UploadId", id)], namespaced: true))
    }

    func uploadPart(_ request: Request, _ bucket: S3Store.Bucket, _ key: String, uploadID: String, partNumber: String) async throws -> Response {
        let folder = try uploadFolder(uploadID, bucket, key)
        guard let number = Int(partNumber), (1...10_000).contains(number) else {
            throw S3Error(status: .badRequest, code: "InvalidArgument", message: "Part number must be an integer between 1 and 10000, got \(partNumber).")
        }
        let temporary = "\(folder)/.\(number).\(UUID().uuidString.lowercased())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw S3Error.internalError("The part could not be stored: \(String(cString: strerror(errno))).") }
        let received: Received
        // Parts are not flushed one by one: the completed object is (see `publish`). A part lost to
        // a power failure makes its completion fail with InvalidPart, and the client uploads again.
        do {
            received = try await Self.receive(request, into: fd)
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        let etag = "\"\(received.md5.hex)\""
        // One rename, to a name that carries the part's MD5: a part uploaded twice at once
        // leaves two whole files, and completion takes the one whose ETag the client names.
        do {
            try SystemCalls.rename(temporary, "\(folder)/\(number).\(received.md5.hex)")
        } catch {
            unlink(temporary)
            throw S3Error.internalError("The part could not be stored: \(error).")
        }
        // The upload is alive: its age counts from its last part.
        utimensat(AT_FDCWD, folder + "/target", nil, 0)
        var headers: HTTPFields = [.eTag: etag]
        if let checksum = received.checksum { headers[HTTPField.Name("x-amz-checksum-\(checksum.algorithm)")!] = checksum.value }
        return Response(status: .ok, headers: headers)
    }

    func completeUpload(_ request: Request, _ bucket: S3Store.Bucket, _ key: String, uploadID: String) async throws -> Response {
        let folder = try uploadFolder(uploadID, bucket, key)
        let body = try await Self.smallBody(request)
        let parts = body.components(separatedBy: "<Part>").dropFirst().map { part in
            (number: XML.values("PartNumber", in: part).first.flatMap { Int($0) } ?? 0,
             etag: XML.values("ETag", in: part).first ?? "")
        }
        guard !parts.isEmpty else {
            throw S3Error(status: .badRequest, code: "MalformedXML", message: "The CompleteMultipartUpload body lists no parts.")
        }
        for (previous, next) in zip(parts, parts.dropFirst()) where next.number <= previous.number {
            throw S3Error(status: .badRequest, code: "InvalidPartOrder", message: "The parts must be listed in ascending order of part number.")
        }
        var md5s: [UInt8] = []
        var files: [String] = []
        for (index, part) in parts.enumerated() {
            let hex = part.etag.trimmingCharacters(in: CharacterSet(charactersIn: "\" ")).lowercased()
            let file = "\(folder)/\(part.number).\(hex)"
            var info = stat()
            guard hex.count == 32, hex.allSatisfy(\.isHexDigit), stat(file, &info) == 0 else {
                throw S3Error(status: .badRequest, code: "InvalidPart",
                              message: "Part \(part.number) was not uploaded, or its ETag does not match.")
            }
            files.append(file)
            if index < parts.count - 1 && Int64(info.st_size) < Self.minimumPartBytes {
                throw S3Error(status: .badRequest, code: "EntityTooSmall",
                              message: "Part \(part.number) has \(info.st_size) bytes; every part but the last needs at least 5 MiB.")
            }
            var byte: UInt8 = 0
            for (i, digit) in Array(hex.utf8).enumerated() {
                let value = UInt8(String(UnicodeScalar(digit)), radix: 16) ?? 0
                byte = i % 2 == 0 ? value << 4 : byte | value
                if i % 2 == 1 { md5s.append(byte) }
            }
        }
        let md5 = EVPDigest.md5()
        md5s.withUnsafeBytes { md5.update($0) }
        let etag = "\"\(md5.finish().hex)-\(parts.count)\""
        // Joining and flushing a large object takes seconds: off the concurrency pool.
        let numbers = parts.map(\.number)
        try await BlockingWork.shared.run { [store, files] in
            let staged = try store.stagingFile(for: bucket)
            do {
                for (number, file) in zip(numbers, files) {
                    let input = open(file, O_RDONLY | O_CLOEXEC)
                    guard input >= 0 else { throw S3Error.internalError("Part \(number) could not be read.") }
                    defer { close(input) }
                    try Self.copyAll(from: input, to: staged.fd)
                }
            } catch {
                close(staged.fd)
                unlinkat(staged.directory, staged.name, 0)
                close(staged.directory)
                throw (error as? S3Error) ?? S3Error.internalError("The parts could not be joined: \(error).")
            }
            try store.publish(staged: staged, as: key, in: bucket, etag: etag)
        }
        try? FileManager.default.removeItem(atPath: folder)
        let location = "/\(bucket.name)/\(key)"
        return Self.xml(XML.document("CompleteMultipartUploadResult",
                                     [("Location", location), ("Bucket", bucket.name), ("Key", key), ("ETag", etag)], namespaced: true))
    }

    func abortUpload(_ bucket: S3Store.Bucket, _ key: String, uploadID: String) throws -> Response {
        let folder = try uploadFolder(uploadID, bucket, key)
        try? FileManager.default.removeItem(atPath: folder)
        return Response(status: .noContent)
    }

    /// Removes uploads started more than 24 hours ago and never completed.
    func removeStaleUploads(now: Date = Date()) {
        // Staged objects a crash left behind, too.
        let partial = store.layout.path(SpoolLayout.partialDirectory)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: partial)) ?? [] where name.hasPrefix(".s3-") {
            var info = stat()
            if stat("\(partial)/\(name)", &info) == 0, now.timeIntervalSince(Date(timespec: info.st_mtim)) > Self.uploadLifetime {
                unlink("\(partial)/\(name)")
            }
        }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: uploads) else { return }
        for name in names {
            var info = stat()
            guard stat("\(uploads)/\(name)/target", &info) == 0 || stat("\(uploads)/\(name)", &info) == 0 else { continue }
            if now.timeIntervalSince(Date(timespec: info.st_mtim)) > Self.uploadLifetime {
                try? FileManager.default.removeItem(atPath: "\(uploads)/\(name)")
            }
        }
    }

    /// Appends all of `input` to `output` (in the kernel when it can).
    static func copyAll(from input: Int32, to output: Int32) throws {
        while true {
            let copied: Int
            do { copied = try SystemCalls.copyRange(from: input, to: output, count: 1 << 30) } catch {
                // Not across these filesystems: read and write.
                var buffer = [UInt8](repeating: 0, count: 1 << 20)
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
                    if n < 0, errno == EINTR { continue }
                    if n < 0 { throw S3Error.internalError("A part could not be read: \(String(cString: strerror(errno))).") }
                    guard n > 0 else { return }
                    try buffer.withUnsafeBytes { try SystemCalls.writeAll(output, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                }
            }
            if copied == 0 { return }
        }
    }
}
