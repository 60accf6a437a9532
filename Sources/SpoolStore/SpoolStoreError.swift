import Glibc

/// The one error type of the store module: a code callers can act on, a sentence for humans,
/// and the underlying cause (the failing system call, its errno and the path involved).
public struct SpoolStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, as far as a caller needs to decide what to do next.
    public enum Code: String, Sendable, Equatable {
        /// A system call failed; `call` and `errno` say which and why.
        case systemCall
        /// A payload is not a regular file (FIFO, symbolic link, directory, device, socket).
        case notRegularFile
        /// A relative path or endpoint name that could escape its folder or is otherwise unusable.
        case invalidPath
        /// `incoming/` and `.spool/` are on different filesystems, so claiming cannot be atomic.
        case crossDevice
    }

    public var code: Code
    /// One human sentence.
    public var message: String
    /// The failing system call's name, when a system call failed.
    public var call: String?
    /// The errno the call reported.
    public var errno: Int32?
    /// The path the call was about, when there was one.
    public var path: String?

    public init(code: Code, message: String, call: String? = nil, errno: Int32? = nil, path: String? = nil) {
        self.code = code
        self.message = message
        self.call = call
        self.errno = errno
        self.path = path
    }

    /// A failed system call: `name(path): strerror(errno)`.
    public static func systemCall(_ name: String, errno: Int32, path: String? = nil) -> SpoolStoreError {
        let reason = String(cString: strerror(errno))
        let subject = path.map { "\(name)(\($0))" } ?? name
        let code: Code = errno == EXDEV ? .crossDevice : .systemCall
        return SpoolStoreError(code: code, message: "\(subject) failed: \(reason)", call: name, errno: errno, path: path)
    }

    /// `path` names something that is not a regular file; `kind` says what it is instead.
    public static func notRegularFile(_ path: String, kind: String) -> SpoolStoreError {
        SpoolStoreError(code: .notRegularFile, message: "\(path) is not a regular file but \(kind); refusing to read it", path: path)
    }

    /// A path or name that is refused before any system call is made.
    public static func invalidPath(_ path: String, reason: String) -> SpoolStoreError {
        SpoolStoreError(code: .invalidPath, message: "invalid path \(path.debugDescription): \(reason)", path: path)
    }

    /// The entry (or a folder on its way) does not exist: normal for payloads claimed by someone else.
    public var isNotFound: Bool { errno == ENOENT || errno == ENOTDIR }

    public var description: String { message }
}
