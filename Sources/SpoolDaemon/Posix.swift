import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The daemon's system calls: EINTR retried, errno reported with the call's name.
enum Posix {
    struct Error: Swift.Error, CustomStringConvertible {
        var call: String
        var path: String
        var errno: Int32
        var description: String { "\(call) \(path): \(String(cString: strerror(errno)))" }
    }

    @discardableResult
    static func retrying(_ call: String, _ path: String, _ body: () -> Int32) throws(Error) -> Int32 {
        while true {
            let r = body()
            if r >= 0 { return r }
            if errno != EINTR { throw Error(call: call, path: path, errno: errno) }
        }
    }

    static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0o644) throws(Error) -> Int32 {
        try retrying("open", path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    static func fsync(_ fd: Int32, _ path: String) throws(Error) {
        try retrying("fsync", path) { Glibc.fsync(fd) }
    }

    /// Flushes a file's data and the metadata needed to read it back (its size), not its times.
    static func fdatasync(_ fd: Int32, _ path: String) throws(Error) {
        try retrying("fdatasync", path) { Glibc.fdatasync(fd) }
    }

    static func rename(_ from: String, _ to: String) throws(Error) {
        try retrying("rename", to) { Glibc.rename(from, to) }
    }

    /// Removes a file; a missing one is fine.
    static func unlinkIfPresent(_ path: String) throws(Error) {
        if Glibc.unlink(path) != 0, errno != ENOENT { throw Error(call: "unlink", path: path, errno: errno) }
    }

    /// `mkdir -p`.
    static func makeDirectories(_ path: String) throws(Error) {
        if Glibc.mkdir(path, 0o755) == 0 || errno == EEXIST { return }
        guard errno == ENOENT else { throw Error(call: "mkdir", path: path, errno: errno) }
        let parent = (path as NSString).deletingLastPathComponent
        guard !parent.isEmpty, parent != path else { throw Error(call: "mkdir", path: path, errno: ENOENT) }
        try makeDirectories(parent)
        if Glibc.mkdir(path, 0o755) != 0, errno != EEXIST { throw Error(call: "mkdir", path: path, errno: errno) }
    }

    /// Flushes a directory's entries (after a rename into it).
    static func fsyncDirectory(_ path: String) throws(Error) {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try fsync(fd, path)
    }

    /// Writes `data` to `path` so that readers see the old file or the whole new one: a temporary
    /// file in `temporaryDirectory` (same filesystem), fsync, rename, fsync of the directory.
    static func writeAtomically(_ data: Data, to path: String, temporaryDirectory: String) throws(Error) {
        let temporary = "\(temporaryDirectory)/.\(UUID().uuidString).tmp"
        do throws(Error) {
            // The descriptor is owned here alone: closed once, whatever fails.
            let fd = try open(temporary, O_WRONLY | O_CREAT | O_TRUNC)
            defer { close(fd) }
            try writeAll(fd, data, temporary)
            try fsync(fd, temporary)
        } catch {
            _ = Glibc.unlink(temporary)
            throw error
        }
        do throws(Error) {
            let directory = (path as NSString).deletingLastPathComponent
            try makeDirectories(directory)
            try rename(temporary, path)
            try fsyncDirectory(directory)
        } catch {
            _ = Glibc.unlink(temporary)
            throw error
        }
    }

    static func writeAll(_ fd: Int32, _ data: Data, _ path: String) throws(Error) {
        var failure: Error?
        data.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = Error(call: "write", path: path, errno: errno)
                    return
                }
                offset += n
            }
        }
        if let failure { throw failure }
    }
}
