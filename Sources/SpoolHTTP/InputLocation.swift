import Foundation
import SpoolCore

#if canImport(Glibc)
import Glibc
#endif

/// How a request named its payload; output and failure locations answer in the same scheme.
enum LocationScheme: Sendable, Equatable {
    /// `file:///absolute/path`.
    case file
    /// `s3://BUCKET/KEY`, BUCKET mapped to a folder by `[buckets]`.
    case s3(bucket: String)
    /// No InputLocation: the payload was the request body.
    case inline
}

/// Turns InputLocations into open files, never reading outside the places Spool may read, and
/// turns result paths back into locations.
///
/// Readable places: `file://` — the spool root, `[http] allowed_input_dirs` and the `[buckets]`
/// folders; `s3://BUCKET/KEY` — BUCKET's folder only. Never the root's internal `.spool/`.
/// Paths are resolved (symbolic links followed) before the check, `..` is refused outright,
/// and the opened descriptor's real path is checked again, so a link swapped in between the
/// check and the open cannot lead outside.
struct InputResolver: Sendable {
    /// The spool root as given (absolute, standardized).
    let root: String
    let allowedDirectories: [String]
    /// Bucket name → absolute folder (relative `[buckets]` paths are inside the root).
    let buckets: [String: String]

    init(layout: SpoolLayout, http: HTTPConfig, buckets: [String: String]) {
        root = layout.root
        allowedDirectories = http.allowedInputDirectories
        self.buckets = buckets.mapValues { $0.hasPrefix("/") ? $0 : layout.path($0) }
    }

    /// Opens the payload `location` names, read-only.
    /// - Throws: a ValidationError naming the problem.
    func open(_ location: String) throws(APIError) -> (fd: Int32, scheme: LocationScheme) {
        if location.hasPrefix("file://") {
            var rest = location.dropFirst("file://".count)
            if rest.hasPrefix("localhost/") { rest = rest.dropFirst("localhost".count) }
            guard rest.hasPrefix("/"), let path = String(rest).removingPercentEncoding else {
                throw .validation("InputLocation \(location) must be file:///ABSOLUTE/PATH")
            }
            let places = [realpath(root)].compactMap { $0 } + allowedDirectories.compactMap(realpath)
                + buckets.values.compactMap(realpath)
            return (try openInside(path, places: places, location: location), .file)
        }
        if location.hasPrefix("s3://") {
            let rest = location.dropFirst("s3://".count)
            let bucket = String(rest.prefix { $0 != "/" })
            let key = String(rest.dropFirst(bucket.count + 1))
            guard let directory = buckets[bucket] else {
                let known = buckets.keys.sorted().joined(separator: ", ")
                throw .validation("InputLocation \(location): bucket \"\(bucket)\" is not configured in [buckets] of spool.toml (configured: \(known.isEmpty ? "none" : known))")
            }
            guard !key.isEmpty, !key.hasSuffix("/") else {
                throw .validation("InputLocation \(location) must name an object: s3://\(bucket)/KEY")
            }
            guard let base = realpath(directory) else {
                throw .validation("InputLocation \(location): the folder of bucket \"\(bucket)\" (\(directory)) does not exist")
            }
            return (try openInside(base + "/" + key, places: [base], location: location), .s3(bucket: bucket))
        }
        throw .validation("InputLocation \(location) must be a file:// or s3:// URI")
    }

    /// Opens `path` if it and its resolution lie inside one of `places` (resolved folders).
    private func openInside(_ path: String, places: [String], location: String) throws(APIError) -> Int32 {
        if path.utf8.contains(0) || path.split(separator: "/").contains("..") {
            throw .validation("InputLocation \(location) must not contain \"..\"")
        }
        guard let resolved = realpath(path) else {
            let reason = errno == ENOENT || errno == ENOTDIR ? "does not exist" : "cannot be read (\(String(cString: strerror(errno))))"
            throw .validation("InputLocation \(location) \(reason)")
        }
        guard isInside(resolved, places) else {
            throw .validation("InputLocation \(location) is outside the spool root and the allowed input folders ([http] allowed_input_dirs, [buckets])")
        }
        let fd = Glibc.open(resolved, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else {
            throw .validation("InputLocation \(location) cannot be read (\(String(cString: strerror(errno))))")
        }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .validation("InputLocation \(location) is not a regular file")
        }
        guard let opened = Self.descriptorPath(fd), isInside(opened, places) else {
            close(fd)
            throw .validation("InputLocation \(location) is outside the spool root and the allowed input folders")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return fd
    }

    /// Inside one of `places`, and neither in the root's internal folder nor one of the root's
    /// own files (`spool.toml` holds the auth token; `events.jsonl` every request's locations).
    private func isInside(_ path: String, _ places: [String]) -> Bool {
        if let resolvedRoot = realpath(root) {
            let internalFolder = resolvedRoot + "/" + SpoolLayout.internalDirectory
            if path == internalFolder || path.hasPrefix(internalFolder + "/") { return false }
            if SpoolLayout.rootFiles.contains(where: { path == resolvedRoot + "/" + $0 }) { return false }
        }
        return places.contains { path.hasPrefix($0 == "/" ? "/" : $0 + "/") }
    }

    /// The location of an absolute result path in `scheme`: `s3://BUCKET/KEY` when the request
    /// used s3:// and the path lies in a bucket's folder (the request's bucket first, then the
    /// others by name), else `file://PATH`.
    func location(of path: String, scheme: LocationScheme) -> String {
        if case .s3(let requested) = scheme {
            let resolved = Self.resolveParent(path)
            let names = [requested] + buckets.keys.sorted().filter { $0 != requested }
            for name in names {
                guard let directory = buckets[name].flatMap(realpath) else { continue }
                let prefix = directory == "/" ? "/" : directory + "/"
                if resolved.hasPrefix(prefix) { return "s3://\(name)/\(resolved.dropFirst(prefix.count))" }
            }
        }
        return Self.fileURL(path)
    }

    /// `file://` and `path` percent-encoded as a URL path. Most paths need no encoding, and
    /// finding that out byte by byte costs far less than Foundation's encoder, which took 1.5% of
    /// the API's processor time (two locations per invocation).
    static func fileURL(_ path: String) -> String {
        if path.utf8.allSatisfy(isURLPathAllowed) { return "file://" + path }
        return "file://" + (path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? path)
    }

    /// Whether `byte` stands for itself in a URL path (Foundation's `urlPathAllowed` as this
    /// Foundation has it: letters, digits and `!$&'()*+,-./=@_~`; `LocationTests` holds the two
    /// to the same answer for every byte).
    static func isURLPathAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "/"),
             UInt8(ascii: "="), UInt8(ascii: "@"), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// `path` with its folder resolved (the file itself may not exist yet).
    static func resolveParent(_ path: String) -> String {
        let url = URL(fileURLWithPath: path)
        guard let parent = realpath(url.deletingLastPathComponent().path) else { return path }
        return parent + "/" + url.lastPathComponent
    }

    /// The real path of an open descriptor, from `/proc/self/fd`.
    static func descriptorPath(_ fd: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// `realpath(3)`: the absolute path with every link resolved, or nil (errno set).
func realpath(_ path: String) -> String? {
    guard let resolved = Glibc.realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
}
