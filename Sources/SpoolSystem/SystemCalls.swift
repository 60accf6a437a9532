import CSpoolSystem
import Foundation
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Spool's one layer over Linux calls, grouped as in swift-nio's `System.swift`: every call goes
/// through `retrying`, which retries `EINTR` and throws `SystemError` naming the call, its errno
/// and the path. Descriptor reads and writes go through apple/swift-system's `FileDescriptor`;
/// what it lacks (folder fsync, rename, mkdir, copy_file_range, sync_file_range) is here.
public enum SystemCalls {
    /// Runs `body` until it returns something other than `-1` with `EINTR`; `-1` otherwise throws.
    @discardableResult
    public static func retrying<T: FixedWidthInteger>(_ call: String, path: String? = nil, _ body: () -> T) throws(SystemError) -> T {
        while true {
            let result = body()
            guard result == -1 else { return result }
            let error = Glibc.errno
            if error == EINTR { continue }
            throw SystemError(call: call, errno: error, path: path)
        }
    }

    /// For calls that return a pointer and signal failure with `NULL` (`opendir`, `fdopendir`).
    public static func pointer<T>(_ call: String, path: String? = nil, _ body: () -> T?) throws(SystemError) -> T {
        while true {
            if let result = body() { return result }
            let error = Glibc.errno
            if error == EINTR { continue }
            throw SystemError(call: call, errno: error, path: path)
        }
    }

    // MARK: Descriptors

    /// `open(2)`; `O_CLOEXEC` is always added.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(SystemError) -> Int32 {
        try retrying("open", path: path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    /// `close(2)`. `EINTR` is not retried: on Linux the descriptor is already gone.
    public static func close(_ fd: Int32) throws(SystemError) {
        guard Glibc.close(fd) == -1, Glibc.errno != EINTR else { return }
        throw SystemError(call: "close", errno: Glibc.errno)
    }

    /// Reads up to `buffer.count` bytes; 0 at end of file.
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, path: String? = nil) throws(SystemError) -> Int {
        do {
            return try FileDescriptor(rawValue: fd).read(into: buffer, retryOnInterrupt: true)
        } catch let error as Errno {
            throw SystemError(call: "read", errno: error.rawValue, path: path)
        } catch {
            throw SystemError(call: "read", errno: EIO, path: path)
        }
    }

    /// Reads up to `buffer.count` bytes at `offset` without moving the file position; 0 at the
    /// end of the file.
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64, path: String? = nil) throws(SystemError) -> Int {
        do {
            return try FileDescriptor(rawValue: fd).read(fromAbsoluteOffset: offset, into: buffer, retryOnInterrupt: true)
        } catch let error as Errno {
            throw SystemError(call: "pread", errno: error.rawValue, path: path)
        } catch {
            throw SystemError(call: "pread", errno: EIO, path: path)
        }
    }

    /// Writes all of `bytes`.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String? = nil) throws(SystemError) {
        do {
            _ = try FileDescriptor(rawValue: fd).writeAll(bytes)
        } catch let error as Errno {
            throw SystemError(call: "write", errno: error.rawValue, path: path)
        } catch {
            throw SystemError(call: "write", errno: EIO, path: path)
        }
    }

    public static func writeAll(_ fd: Int32, _ data: Data, path: String? = nil) throws(SystemError) {
        var failure: SystemError?
        data.withUnsafeBytes { bytes in
            do throws(SystemError) { try writeAll(fd, bytes, path: path) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    public static func writeAll(_ fd: Int32, _ string: String, path: String? = nil) throws(SystemError) {
        try writeAll(fd, Data(string.utf8), path: path)
    }

    public static func fsync(_ fd: Int32, path: String? = nil) throws(SystemError) {
        try retrying("fsync", path: path) { Glibc.fsync(fd) }
    }

    /// Flushes a file's data and the metadata needed to read it back (its size), not its times.
    public static func fdatasync(_ fd: Int32, path: String? = nil) throws(SystemError) {
        try retrying("fdatasync", path: path) { Glibc.fdatasync(fd) }
    }

    /// Copies up to `count` bytes in the kernel (`copy_file_range`); returns bytes copied, 0 at
    /// the end of the input.
    public static func copyRange(from input: Int32, to output: Int32, count: Int) throws(SystemError) -> Int {
        try retrying("copy_file_range") { spool_copy_file_range(input, output, count) }
    }

    /// Starts writing a file's dirty pages to disk without waiting (`sync_file_range` with
    /// `SYNC_FILE_RANGE_WRITE`). Advisory: a later fsync is what counts.
    public static func startWriteback(_ fd: Int32) {
        _ = spool_start_writeback(fd)
    }

    // MARK: Paths

    /// `lstat(2)`: never follows a final symbolic link.
    public static func lstat(_ path: String) throws(SystemError) -> stat {
        var info = stat()
        try retrying("lstat", path: path) { Glibc.lstat(path, &info) }
        return info
    }

    /// `rename(2)`: atomic within one filesystem, `EXDEV` across.
    public static func rename(_ from: String, _ to: String) throws(SystemError) {
        try retrying("rename", path: to) { Glibc.rename(from, to) }
    }

    /// `mkdir(2)`; false when something already exists at `path`.
    @discardableResult
    public static func mkdir(_ path: String, mode: mode_t = 0o755) throws(SystemError) -> Bool {
        do {
            try retrying("mkdir", path: path) { Glibc.mkdir(path, mode) }
            return true
        } catch where error.errno == EEXIST {
            return false
        }
    }

    /// `mkdir -p`, where anything already at a path counts as made (as `mkdir -p` itself treats
    /// `EEXIST` at the last step): for folders a process uses if it can (a file named `errors`
    /// in the way is reported when a marker is written there, not at start).
    /// `FileTree.makeDirectories` is the strict one: only a folder, or a link to one, will do.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(SystemError) {
        if Glibc.mkdir(path, mode) == 0 || Glibc.errno == EEXIST { return }
        guard Glibc.errno == ENOENT else { throw SystemError(call: "mkdir", errno: Glibc.errno, path: path) }
        let parent = (path as NSString).deletingLastPathComponent
        guard !parent.isEmpty, parent != path else { throw SystemError(call: "mkdir", errno: ENOENT, path: path) }
        try makeDirectories(parent, mode: mode)
        if Glibc.mkdir(path, mode) != 0, Glibc.errno != EEXIST { throw SystemError(call: "mkdir", errno: Glibc.errno, path: path) }
    }

    /// Removes a file; a missing one is fine.
    public static func unlinkIfPresent(_ path: String) throws(SystemError) {
        if Glibc.unlink(path) != 0, Glibc.errno != ENOENT { throw SystemError(call: "unlink", errno: Glibc.errno, path: path) }
    }

    /// Flushes a folder's entries (after a rename into it), so they survive a power loss.
    public static func fsyncDirectory(_ path: String) throws(SystemError) {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { try? close(fd) }
        try fsync(fd, path: path)
    }

    /// Writes `data` to `path` so that readers see the old file or the whole new one: a temporary
    /// file in `temporaryDirectory` (same filesystem), fsync, rename, fsync of the folder. The
    /// temporary file is removed on any failure.
    public static func writeAtomically(_ data: Data, to path: String, temporaryDirectory: String) throws(SystemError) {
        let temporary = "\(temporaryDirectory)/.\(UUID().uuidString).tmp"
        do throws(SystemError) {
            // The descriptor is owned here alone: closed once, whatever fails.
            let fd = try open(temporary, O_WRONLY | O_CREAT | O_TRUNC)
            defer { try? close(fd) }
            try writeAll(fd, data, path: temporary)
            try fsync(fd, path: temporary)
            let directory = (path as NSString).deletingLastPathComponent
            try makeDirectories(directory)
            try rename(temporary, path)
            try fsyncDirectory(directory)
        } catch {
            _ = Glibc.unlink(temporary)
            throw error
        }
    }
}

extension Glibc.stat {
    /// The file type bits (`S_IFREG`, `S_IFDIR`, …).
    public var fileType: mode_t { st_mode & S_IFMT }
    public var isDirectory: Bool { fileType == S_IFDIR }
    public var isRegularFile: Bool { fileType == S_IFREG }
}
