import Glibc

/// The platform calls of the intake module, grouped as in swift-nio's `System.swift`: every call
/// goes through `call(_:path:_:)`, which retries `EINTR` and throws `SpoolIntakeError` naming the
/// call, its errno and the path.
enum SystemCall {
    /// Runs `body` until it returns something other than `-1` with `EINTR`; `-1` otherwise throws.
    @discardableResult
    static func call<T: FixedWidthInteger>(_ name: String, path: String? = nil, _ body: () -> T) throws -> T {
        while true {
            let result = body()
            guard result == -1 else { return result }
            let error = errno
            if error == EINTR { continue }
            throw SpoolIntakeError.systemCall(name, errno: error, path: path)
        }
    }

    /// Like `call`, for non-blocking descriptors: `nil` when the call would block (`EAGAIN`).
    static func nonBlocking<T: FixedWidthInteger>(_ name: String, path: String? = nil, _ body: () -> T) throws -> T? {
        do {
            return try call(name, path: path, body)
        } catch let error as SpoolIntakeError where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            return nil
        }
    }

    /// For calls that return a pointer and signal failure with `NULL` (`opendir`, `fdopendir`).
    static func pointer<T>(_ name: String, path: String? = nil, _ body: () -> T?) throws -> T {
        while true {
            if let result = body() { return result }
            let error = errno
            if error == EINTR { continue }
            throw SpoolIntakeError.systemCall(name, errno: error, path: path)
        }
    }

    // MARK: - Thin wrappers used in several places

    /// `lstat(2)`: never follows a final symbolic link.
    static func lstat(_ path: String) throws -> stat {
        var info = stat()
        try call("lstat", path: path) { Glibc.lstat(path, &info) }
        return info
    }

    /// `open(2)`; `O_CLOEXEC` is always added.
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) throws -> Int32 {
        try call("open", path: path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    /// `close(2)`. `EINTR` is not retried: on Linux the descriptor is already gone.
    static func close(_ fd: Int32) throws {
        guard Glibc.close(fd) == -1 else { return }
        let error = errno
        if error == EINTR { return }
        throw SpoolIntakeError.systemCall("close", errno: error)
    }

    /// `mkdir(2)`; `false` when something already exists at `path`.
    @discardableResult
    static func mkdir(_ path: String, mode: mode_t = 0o755) throws -> Bool {
        do {
            try call("mkdir", path: path) { Glibc.mkdir(path, mode) }
            return true
        } catch let error as SpoolIntakeError where error.errno == EEXIST {
            return false
        }
    }

    /// `rename(2)`: atomic within one filesystem, `EXDEV` across.
    static func rename(_ from: String, _ to: String) throws {
        try call("rename", path: from) { Glibc.rename(from, to) }
    }

    /// `fsync(2)` on a directory, so that entries created or renamed in it survive a power loss.
    static func fsyncDirectory(_ path: String) throws {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { try? close(fd) }
        try call("fsync", path: path) { Glibc.fsync(fd) }
    }
}

extension stat {
    /// The file type bits (`S_IFREG`, `S_IFDIR`, …).
    var fileType: mode_t { st_mode & S_IFMT }
    var isDirectory: Bool { fileType == S_IFDIR }
    var isRegularFile: Bool { fileType == S_IFREG }
}
