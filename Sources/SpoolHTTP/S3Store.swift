import CSpoolSystem
import Foundation
import SpoolCore
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// The S3 API's view of the spool folders: buckets are the `[buckets]` folders (a root without
/// `[buckets]` has one, `spool`, the root itself), keys are paths inside them.
///
/// Keys never leave their bucket's folder: `..`, `.`, empty components and absolute keys are
/// refused, every folder on the way is opened without following links (`O_NOFOLLOW`), and the
/// root's own `.spool/`, `spool.toml` and `events.jsonl` are never read or written.
///
/// Objects appear whole: a body is written under a temporary name (in the root's
/// `.spool/partial/` when the bucket is on the root's filesystem, else in the bucket's hidden
/// `.spool-s3/`), flushed, then renamed into place, so a PutObject into a drop folder is one drop.
struct S3Store: Sendable {
    struct Bucket: Sendable {
        var name: String
        /// Absolute folder.
        var folder: String
    }

    let layout: SpoolLayout
    let buckets: [String: Bucket]

    /// Where multipart uploads keep their parts until completed or aborted.
    static let uploadsDirectory = ".spool/uploads"
    /// The hidden staging folder of a bucket on another filesystem than the root.
    static let foreignStaging = ".spool-s3"

    init(layout: SpoolLayout, config: SpoolConfig) {
        self.layout = layout
        var buckets: [String: Bucket] = [:]
        for (name, folder) in config.effectiveBuckets {
            let absolute = folder.hasPrefix("/") ? folder : layout.path(folder)  // "" is the root
            buckets[name] = Bucket(name: name, folder: URL(fileURLWithPath: absolute).standardizedFileURL.path)
        }
        self.buckets = buckets
    }

    func bucket(_ name: String) throws(S3Error) -> Bucket {
        guard let bucket = buckets[name] else { throw .noSuchBucket(name, known: buckets.keys.sorted()) }
        return bucket
    }

    // MARK: Keys

    /// The components of `key`, refused when it could name something outside the bucket or
    /// inside Spool's own files.
    func components(of key: String, in bucket: Bucket) throws(S3Error) -> [String] {
        guard !key.isEmpty else { throw .invalidKey(key, "is empty") }
        guard key.utf8.count <= 1024 else { throw .invalidKey(String(key.prefix(64)) + "…", "is longer than 1024 bytes") }
        guard !key.utf8.contains(0) else { throw .invalidKey(key, "contains NUL") }
        // Split on the byte `/`: a `/` followed by a combining mark is one Character to Swift, but
        // the kernel still sees the slash.
        let parts = key.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        for part in parts {
            if part.isEmpty { throw .invalidKey(key, "has an empty path component (a leading, trailing or double /)") }
            if part == "." || part == ".." { throw .invalidKey(key, "has a \(part) component") }
            if part.utf8.count > 255 { throw .invalidKey(key, "has a component longer than 255 bytes") }
        }
        if parts.first == Self.foreignStaging { throw .accessDenied("Keys under \(Self.foreignStaging)/ are Spool's staging area.") }
        // The root's own files, as paths (the walk in `openParent` checks them by identity too,
        // whatever links or spellings lead there).
        let path = bucket.folder + "/" + parts.joined(separator: "/")
        let protected = [SpoolLayout.internalDirectory, SpoolLayout.configFile, SpoolLayout.eventsFile].map { layout.path($0) }
        for item in protected where path == item || path.hasPrefix(item + "/") {
            throw .accessDenied("\(key) is one of Spool's own files; it is not served.")
        }
        return parts
    }

    /// Opens the folder that holds `parts.last` inside `bucket`, never following a link; with
    /// `create`, makes missing folders. Returns the folder's descriptor.
    func openParent(_ parts: [String], in bucket: Bucket, create: Bool) throws(S3Error) -> Int32 {
        var fd = open(bucket.folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0, create, errno == ENOENT {
            try? SystemCalls.makeDirectories(bucket.folder)
            fd = open(bucket.folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        guard fd >= 0 else { throw .internalError("The folder of bucket \(bucket.name) cannot be opened: \(String(cString: strerror(errno))).") }
        let guarded = ProtectedFiles(layout: layout)
        var components = parts[...]
        while let part = components.first {
            components = components.dropFirst()
            if guarded.isProtected(name: part, in: fd) {
                close(fd)
                throw .accessDenied("The key leads to one of Spool's own files; it is not served.")
            }
            if components.isEmpty { break }
            var next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0, create, errno == ENOENT {
                _ = mkdirat(fd, part, 0o755)
                next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            let error = errno
            close(fd)
            guard next >= 0 else {
                if error == ELOOP || error == ENOTDIR {
                    throw .accessDenied("A folder on the way to the key is a link or a file; links are not followed out of the bucket.")
                }
                throw S3Error(status: .notFound, code: "NoSuchKey", message: "The specified key does not exist.")
            }
            fd = next
        }
        return fd
    }

    /// Opens an object for reading, or nil when there is none (a folder is no object either).
    func openObject(_ key: String, in bucket: Bucket) throws(S3Error) -> (fd: Int32, info: stat)? {
        let parts = try components(of: key, in: bucket)
        let parent: Int32
        do { parent = try openParent(parts, in: bucket, create: false) } catch let error where error.code == "NoSuchKey" { return nil }
        defer { close(parent) }
        let fd = openat(parent, parts.last!, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ELOOP { throw .accessDenied("The key is a symbolic link; links are not followed.") }
            return nil
        }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            return nil
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return (fd, info)
    }

    // MARK: Writing

    /// A temporary file for a new object of `bucket`, on the bucket folder's filesystem.
    func stagingFile(for bucket: Bucket) throws(S3Error) -> (fd: Int32, directory: Int32, name: String) {
        var rootInfo = stat()
        var bucketInfo = stat()
        let partial = layout.path(SpoolLayout.partialDirectory)
        try? SystemCalls.makeDirectories(bucket.folder)
        let sameDevice = stat(partial, &rootInfo) == 0 && stat(bucket.folder, &bucketInfo) == 0 && rootInfo.st_dev == bucketInfo.st_dev
        let directory = sameDevice ? partial : bucket.folder + "/" + Self.foreignStaging
        try? SystemCalls.makeDirectories(directory)
        let dirfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirfd >= 0 else { throw .internalError("The staging folder \(directory) cannot be opened: \(String(cString: strerror(errno))).") }
        let name = ".s3-\(UUID().uuidString.lowercased())"
        let fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let message = String(cString: strerror(errno))
            close(dirfd)
            throw .internalError("A staging file cannot be made in \(directory): \(message).")
        }
        return (fd, dirfd, name)
    }

    /// Makes a staged file the object `key`: flushed, renamed into place, its folder flushed.
    /// Records the ETag with the file (an extended attribute) when the filesystem allows.
    func publish(staged: (fd: Int32, directory: Int32, name: String), as key: String, in bucket: Bucket, etag: String) throws(S3Error) {
        defer {
            close(staged.fd)
            close(staged.directory)
        }
        guard fdatasync(staged.fd) == 0 else {
            unlinkat(staged.directory, staged.name, 0)
            throw .internalError("The object could not be flushed to disk: \(String(cString: strerror(errno))).")
        }
        var info = stat()
        fstat(staged.fd, &info)
        ETagCache.store(etag, fd: staged.fd, info: info)
        let parts: [String]
        let parent: Int32
        do {
            parts = try components(of: key, in: bucket)
            parent = try openParent(parts, in: bucket, create: true)
        } catch {
            unlinkat(staged.directory, staged.name, 0)
            throw error
        }
        defer { close(parent) }
        var existing = stat()
        if fstatat(parent, parts.last!, &existing, AT_SYMLINK_NOFOLLOW) == 0, (existing.st_mode & S_IFMT) == S_IFDIR {
            unlinkat(staged.directory, staged.name, 0)
            throw S3Error(status: .conflict, code: "InvalidRequest", message: "\(key) is a folder of other objects.")
        }
        guard renameat(staged.directory, staged.name, parent, parts.last!) == 0 else {
            let message = String(cString: strerror(errno))
            unlinkat(staged.directory, staged.name, 0)
            throw .internalError("The object could not be put in place: \(message).")
        }
        fsync(parent)
    }

    /// Removes an object (no error when there is none); empty folders it leaves are kept.
    func delete(_ key: String, in bucket: Bucket) throws(S3Error) {
        let parts = try components(of: key, in: bucket)
        let parent: Int32
        do { parent = try openParent(parts, in: bucket, create: false) } catch let error where error.code == "NoSuchKey" { return }
        defer { close(parent) }
        var info = stat()
        guard fstatat(parent, parts.last!, &info, AT_SYMLINK_NOFOLLOW) == 0, (info.st_mode & S_IFMT) != S_IFDIR else { return }
        unlinkat(parent, parts.last!, 0)
    }

    // MARK: Listing

    struct Entry {
        var key: String
        var size: Int64
        var modified: Date
        var path: String
    }

    /// Every object under `prefix` in key order (regular files; links, hidden staging and Spool's
    /// own files left out), starting after `after`, at most `limit` (one more tells there is more).
    func list(_ bucket: Bucket, prefix: String, after: String?, limit: Int) -> [Entry] {
        var entries: [Entry] = []
        // Walk only the folder the prefix points into, reached through real folders only (never a link).
        let folderPart = prefix.utf8.contains(UInt8(ascii: "/")) ? String(prefix[..<prefix.lastIndex(of: "/")!]) : ""
        var walked = bucket.folder
        for component in folderPart.utf8.split(separator: UInt8(ascii: "/")).map({ String(decoding: $0, as: UTF8.self) }) {
            walked += "/" + component
            var info = stat()
            guard component != "..", component != ".", lstat(walked, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { return [] }
        }
        let start = folderPart.isEmpty ? bucket.folder : bucket.folder + "/" + folderPart
        walk(start, key: folderPart, bucket: bucket, prefix: prefix, into: &entries)
        entries.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        if let after { entries.removeAll { !after.utf8.lexicographicallyPrecedes($0.key.utf8) } }
        return Array(entries.prefix(limit))
    }

    private func walk(_ folder: String, key: String, bucket: Bucket, prefix: String, into entries: inout [Entry]) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
        for name in names {
            if key.isEmpty, name == Self.foreignStaging { continue }
            let childKey = key.isEmpty ? name : key + "/" + name
            // Only what can still match the prefix.
            guard childKey.utf8.starts(with: prefix.utf8) || prefix.utf8.starts(with: (childKey + "/").utf8) else { continue }
            let path = folder + "/" + name
            if (try? components(of: childKey, in: bucket)) == nil { continue }
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFDIR: walk(path, key: childKey, bucket: bucket, prefix: prefix, into: &entries)
            case S_IFREG:
                guard childKey.utf8.starts(with: prefix.utf8) else { continue }
                entries.append(Entry(key: childKey, size: Int64(info.st_size), modified: Date(timespec: info.st_mtim), path: path))
            default: continue
            }
        }
    }
}

extension Date {
    init(timespec t: timespec) {
        self.init(timeIntervalSince1970: Double(t.tv_sec) + Double(t.tv_nsec) / 1e9)
    }
}

/// ETags kept with their files (extended attribute `user.spool.etag`: size, mtime and the ETag),
/// so an object's MD5 is computed once, not at every HEAD. A file changed since (another size or
/// mtime) has its ETag computed again.
enum ETagCache {
    static let attribute = "user.spool.etag"

    static func key(_ info: stat) -> String { "\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)" }

    static func store(_ etag: String, fd: Int32, info: stat) {
        let value = Array("\(key(info)) \(etag)".utf8)
        _ = fsetxattr(fd, attribute, value, value.count, 0)
    }

    /// The ETag of the open file: cached, or its MD5 computed now (and cached).
    static func etag(fd: Int32, info: stat) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = fgetxattr(fd, attribute, &buffer, buffer.count)
        if count > 0 {
            let text = String(decoding: buffer.prefix(count), as: UTF8.self)
            let parts = text.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0] == key(info) { return String(parts[1]) }
        }
        let md5 = EVPDigest.md5()
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var offset: off_t = 0
        while true {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n < 0, errno == EINTR { continue }
            // A read error gives no ETag rather than a wrong one kept for good.
            if n < 0 { return "\"\"" }
            guard n > 0 else { break }
            chunk.withUnsafeBytes { md5.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            offset += off_t(n)
        }
        let etag = "\"\(md5.finish().hex)\""
        store(etag, fd: fd, info: info)
        return etag
    }
}

/// The root's own files, recognised by identity (device and inode) rather than by path, so no
/// link, bind mount or other spelling of a bucket folder leads an S3 key to them: the root's
/// `.spool/`, `spool.toml` and `events.jsonl`.
struct ProtectedFiles {
    private let root: (dev: UInt, ino: UInt)?
    private let internalFolder: (dev: UInt, ino: UInt)?
    static let names: Set<String> = [SpoolLayout.internalDirectory, SpoolLayout.configFile, SpoolLayout.eventsFile]

    init(layout: SpoolLayout) {
        func identity(_ path: String) -> (UInt, UInt)? {
            var info = stat()
            return stat(path, &info) == 0 ? (UInt(info.st_dev), UInt(info.st_ino)) : nil
        }
        root = identity(layout.root)
        internalFolder = identity(layout.path(SpoolLayout.internalDirectory))
    }

    /// Whether `name` in the open folder `directory` is one of the root's own files, or the
    /// folder itself is the root's `.spool`.
    func isProtected(name: String, in directory: Int32) -> Bool {
        var info = stat()
        guard fstat(directory, &info) == 0 else { return true }
        let here = (UInt(info.st_dev), UInt(info.st_ino))
        if let internalFolder, here == internalFolder { return true }
        if let root, here == root, Self.names.contains(name) { return true }
        return false
    }
}
