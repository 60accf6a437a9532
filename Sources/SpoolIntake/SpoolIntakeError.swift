import Glibc

/// The one error type of the intake module (watching, scanning, polling): a code callers can act
/// on, a sentence for humans, and the underlying cause (the failing system call, its errno and
/// the path involved).
public struct SpoolIntakeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, as far as a caller needs to decide what to do next.
    public enum Code: String, Sendable, Equatable {
        /// A system call failed; `call` and `errno` say which and why.
        case systemCall
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
    public static func systemCall(_ name: String, errno: Int32, path: String? = nil) -> SpoolIntakeError {
        let reason = String(cString: strerror(errno))
        let subject = path.map { "\(name)(\($0))" } ?? name
        return SpoolIntakeError(code: .systemCall, message: "\(subject) failed: \(reason)", call: name, errno: errno, path: path)
    }

    /// The entry (or a folder on its way) does not exist: normal for payloads claimed by someone else.
    public var isNotFound: Bool { errno == ENOENT || errno == ENOTDIR }

    public var description: String { message }
}
