import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SpoolCore
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// Multipart uploads: each in `.spool/uploads/<UploadId>/` (its bucket and key in `target`) until
/// completed — published like a PutObject, so the object appears whole and a drop happens once —
/// or aborted. Uploads left unfinished are removed after 24 hours.
///
/// Clients cut a file into parts of one size (boto3: 8 MiB), so a part of the upload's part size
/// is written in place, at `(n − 1) × size`, into one staged body file (`UploadBody`); completion
/// then publishes that file instead of copying a gigabyte. Any other part — the first of another
/// size, a second upload of a part number — is a file of its own, `<n>.<md5 hex>`, and
/// completion copies what is not in place.
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
            try UploadBody.create(in: folder, store: store, bucket: bucket)
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
        if let length = Self.declaredLength(request.headers), length >= Self.minimumPartBytes,
           let slot = UploadBody.claim(folder: folder, part: number, length: length) {
            return try await uploadPartInPlace(request, folder: folder, number: number, slot: slot)
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

    /// Receives a part into its place in the body file; its marker `<n>.<md5>.body` says what is
    /// there once it is whole.
    private func uploadPartInPlace(_ request: Request, folder: String, number: Int, slot: UploadBody.Slot) async throws -> Response {
        let received: Received
        do {
            received = try await Self.receive(request, into: slot.fd, limit: slot.length)
            guard received.bytes == slot.length else {
                throw S3Error(status: .badRequest, code: "IncompleteBody", message: "The body has \(received.bytes) bytes, not the \(slot.length) it declared.")
            }
            let marker = open("\(folder)/\(number).\(received.md5.hex).body", O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            guard marker >= 0 else { throw S3Error.internalError("The part could not be recorded: \(String(cString: strerror(errno))).") }
            close(marker)
        } catch {
            slot.release(folder: folder, part: number)
            throw error
        }
        slot.close()
        utimensat(AT_FDCWD, folder + "/target", nil, 0)
        var headers: HTTPFields = [.eTag: "\"\(received.md5.hex)\""]
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
        var sources: [UploadBody.Source] = []
        let partSize = UploadBody.partSize(folder: folder)
        for (index, part) in parts.enumerated() {
            let hex = part.etag.trimmingCharacters(in: CharacterSet(charactersIn: "\" ")).lowercased()
            let file = "\(folder)/\(part.number).\(hex)"
            var info = stat()
            guard hex.count == 32, hex.allSatisfy(\.isHexDigit) else {
                throw S3Error(status: .badRequest, code: "InvalidPart", message: "Part \(part.number) was not uploaded, or its ETag does not match.")
            }
            if stat(file, &info) == 0 {
                sources.append(.file(file, bytes: Int64(info.st_size)))
            } else if let partSize, stat(file + ".body", &info) == 0 {
                sources.append(.inPlace(part: part.number, bytes: partSize))
                info.st_size = Int(partSize)
            } else {
                throw S3Error(status: .badRequest, code: "InvalidPart",
                              message: "Part \(part.number) was not uploaded, or its ETag does not match.")
            }
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
        try await BlockingWork.shared.run { [store, sources] in
            // Parts being written in place finish first; later ones find the body gone.
            let body = UploadBody.openExclusive(folder: folder)
            // A failure keeps the body for the client's next try; a published object is done with it.
            var published = false
            defer { if let body { published ? body.discard() : body.unlock() } }
            let staged: (fd: Int32, directory: Int32, name: String)
            if let body, let partSize, UploadBody.isInPlace(sources, partSize: partSize) {
                // Parts 1 … N−1 are where they belong: the last joins them, and the body is the object.
                let end = partSize * Int64(sources.count - 1)
                do {
                    if case .file(let file, let bytes) = sources.last! {
                        try Self.copy(file, bytes: bytes, to: body.fd, at: end)
                        guard ftruncate(body.fd, off_t(end + bytes)) == 0 else { throw S3Error.internalError("The object could not be cut to size.") }
                    } else {
                        guard ftruncate(body.fd, off_t(end + partSize)) == 0 else { throw S3Error.internalError("The object could not be cut to size.") }
                    }
                } catch {
                    throw (error as? S3Error) ?? S3Error.internalError("The parts could not be joined: \(error).")
                }
                staged = try body.take()
            } else {
                staged = try store.stagingFile(for: bucket)
                do {
                    var offset: Int64 = 0
                    for source in sources {
                        switch source {
                        case .file(let file, let bytes):
                            try Self.copy(file, bytes: bytes, to: staged.fd, at: offset)
                            offset += bytes
                        case .inPlace(let part, let bytes):
                            guard let body else { throw S3Error.internalError("Part \(part) could not be read.") }
                            try Self.copy(from: body.fd, at: Int64(part - 1) * bytes, bytes: bytes, to: staged.fd, at: offset)
                            offset += bytes
                        }
                    }
                } catch {
                    close(staged.fd)
                    unlinkat(staged.directory, staged.name, 0)
                    close(staged.directory)
                    throw (error as? S3Error) ?? S3Error.internalError("The parts could not be joined: \(error).")
                }
            }
            try store.publish(staged: staged, as: key, in: bucket, etag: etag)
            published = true
        }
        try? FileManager.default.removeItem(atPath: folder)
        let location = "/\(bucket.name)/\(key)"
        return Self.xml(XML.document("CompleteMultipartUploadResult",
                                     [("Location", location), ("Bucket", bucket.name), ("Key", key), ("ETag", etag)], namespaced: true))
    }

    func abortUpload(_ bucket: S3Store.Bucket, _ key: String, uploadID: String) async throws -> Response {
        let folder = try uploadFolder(uploadID, bucket, key)
        // It waits for parts being written in place: off the concurrency pool.
        try await BlockingWork.shared.run { UploadBody.openExclusive(folder: folder)?.discard() }
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
                UploadBody.openExclusive(folder: "\(uploads)/\(name)", wait: false)?.discard()
                try? FileManager.default.removeItem(atPath: "\(uploads)/\(name)")
            }
        }
    }

    /// Copies the part file `path` (`bytes` long) into `output` at `offset`.
    static func copy(_ path: String, bytes: Int64, to output: Int32, at offset: Int64) throws {
        let input = open(path, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw S3Error.internalError("A part could not be read: \(String(cString: strerror(errno))).") }
        defer { close(input) }
        try copy(from: input, at: 0, bytes: bytes, to: output, at: offset)
    }

    /// Copies `bytes` bytes of `input` from `inputOffset` into `output` at `outputOffset` (in the
    /// kernel when it can).
    static func copy(from input: Int32, at inputOffset: Int64, bytes: Int64, to output: Int32, at outputOffset: Int64) throws {
        guard lseek(input, off_t(inputOffset), SEEK_SET) >= 0, lseek(output, off_t(outputOffset), SEEK_SET) >= 0 else {
            throw S3Error.internalError("A part could not be positioned: \(String(cString: strerror(errno))).")
        }
        var left = bytes
        while left > 0 {
            let copied: Int
            do { copied = try SystemCalls.copyRange(from: input, to: output, count: Int(min(left, 1 << 30))) } catch {
                // Not across these filesystems: read and write.
                var buffer = [UInt8](repeating: 0, count: 1 << 20)
                while left > 0 {
                    let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, Int(min(left, Int64($0.count)))) }
                    if n < 0, errno == EINTR { continue }
                    if n < 0 { throw S3Error.internalError("A part could not be read: \(String(cString: strerror(errno))).") }
                    guard n > 0 else { throw S3Error.internalError("A part is shorter than it was.") }
                    try buffer.withUnsafeBytes { try SystemCalls.writeAll(output, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                    left -= Int64(n)
                }
                return
            }
            guard copied > 0 else { throw S3Error.internalError("A part is shorter than it was.") }
            left -= Int64(copied)
        }
    }
}

/// The staged file a multipart upload's parts of one size are written into, in place.
///
/// In the upload's folder: `body` names the staged file (its folder and name; staged where a
/// PutObject of the bucket would be, so publishing it is a rename); `partsize` is the size of
/// the first part of at least 5 MiB to come, the size every in-place part has; `<n>.in-body`
/// claims part n's place for one upload of it at a time; `<n>.<md5>.body` says the place holds
/// the part with that MD5. Part writers hold a shared `flock` on the body; completion, abort and
/// expiry take it exclusively, so no part is half-written into a published object, and a writer
/// that gets its lock after them finds the file gone from `body`'s path and stores its part apart.
enum UploadBody {
    enum Source: Sendable {
        case file(String, bytes: Int64)
        case inPlace(part: Int, bytes: Int64)
    }

    /// Stages the body file and records where (at CreateMultipartUpload).
    static func create(in folder: String, store: S3Store, bucket: S3Store.Bucket) throws {
        let staged = try store.stagingFile(for: bucket)
        close(staged.fd)
        var path = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/fd/\(staged.directory)", &path, path.count - 1)
        close(staged.directory)
        guard length > 0 else { throw S3Error.internalError("The upload's staging folder cannot be named.") }
        path[length] = 0
        try Data("\(String(cString: path))\n\(staged.name)".utf8).write(to: URL(fileURLWithPath: folder + "/body"))
    }

    private static func location(_ folder: String) -> (directory: String, name: String)? {
        guard let text = try? String(contentsOfFile: folder + "/body", encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count == 2, lines[1].hasPrefix(".s3-") else { return nil }
        return (String(lines[0]), String(lines[1]))
    }

    /// The upload's in-place part size, once a part has set it.
    static func partSize(folder: String) -> Int64? {
        (try? String(contentsOfFile: folder + "/partsize", encoding: .utf8)).flatMap { Int64($0) }
    }

    /// Sets the part size to `length` if no part has yet (atomically: `link` of a whole file).
    private static func settle(partSize length: Int64, folder: String) -> Int64? {
        if let size = partSize(folder: folder) { return size }
        let temporary = "\(folder)/.partsize.\(UUID().uuidString.lowercased())"
        guard (try? Data("\(length)".utf8).write(to: URL(fileURLWithPath: temporary))) != nil else { return nil }
        _ = link(temporary, folder + "/partsize")
        unlink(temporary)
        return partSize(folder: folder)
    }

    /// Part n's place in the body, open and locked for writing.
    struct Slot: Sendable {
        let fd: Int32
        let length: Int64

        func close() { _ = Glibc.close(fd) }

        /// Gives the place up after a failed upload of the part (its bytes there are garbage).
        func release(folder: String, part: Int) {
            unlink("\(folder)/\(part).in-body")
            close()
        }
    }

    /// Claims part n's place when the part has the upload's part size and no other upload of
    /// part n holds it; nil sends the part to a file of its own.
    static func claim(folder: String, part: Int, length: Int64) -> Slot? {
        guard let size = settle(partSize: length, folder: folder), size == length,
              let (directory, name) = location(folder) else { return nil }
        let claim = "\(folder)/\(part).in-body"
        let claimed = open(claim, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard claimed >= 0 else { return nil }
        close(claimed)
        let fd = open("\(directory)/\(name)", O_WRONLY | O_CLOEXEC)
        var held = stat()
        var current = stat()
        guard fd >= 0, flock(fd, LOCK_SH) == 0, fstat(fd, &held) == 0, stat("\(directory)/\(name)", &current) == 0,
              held.st_ino == current.st_ino, held.st_nlink > 0, lseek(fd, off_t(Int64(part - 1) * length), SEEK_SET) >= 0
        else {
            if fd >= 0 { Glibc.close(fd) }
            unlink(claim)
            return nil
        }
        return Slot(fd: fd, length: length)
    }

    /// Whether parts 1 … N−1 are all in place, so the body needs only the last to be the object.
    static func isInPlace(_ sources: [Source], partSize: Int64) -> Bool {
        for (index, source) in sources.dropLast().enumerated() {
            guard case .inPlace(let part, let bytes) = source, part == index + 1, bytes == partSize else { return false }
        }
        if case .inPlace(let part, _) = sources.last!, part != sources.count { return false }
        return true
    }

    /// The body, locked against part writers: for completion, abort and expiry.
    /// Without `wait`, nil when a part is being written.
    static func openExclusive(folder: String, wait: Bool = true) -> Held? {
        guard let (directory, name) = location(folder) else { return nil }
        let dirfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirfd >= 0 else { return nil }
        let fd = openat(dirfd, name, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            Glibc.close(dirfd)
            return nil
        }
        var locked: Int32
        repeat { locked = flock(fd, wait ? LOCK_EX : LOCK_EX | LOCK_NB) } while locked != 0 && errno == EINTR
        guard locked == 0 else {
            Glibc.close(fd)
            Glibc.close(dirfd)
            return nil
        }
        return Held(fd: fd, directory: dirfd, name: name)
    }

    final class Held: @unchecked Sendable {
        let fd: Int32
        let directory: Int32
        let name: String
        private var taken = false

        init(fd: Int32, directory: Int32, name: String) {
            self.fd = fd
            self.directory = directory
            self.name = name
        }

        /// Hands the body over as a staged file (publishing renames it and closes both).
        func take() throws(S3Error) -> (fd: Int32, directory: Int32, name: String) {
            taken = true
            return (fd, directory, name)
        }

        /// Removes the body unless it was taken.
        func discard() {
            guard !taken else { return }
            unlinkat(directory, name, 0)
            unlock()
        }

        /// Leaves the body as it is, for parts to come or a later completion.
        func unlock() {
            guard !taken else { return }
            taken = true
            Glibc.close(fd)
            Glibc.close(directory)
        }
    }
}
