#if canImport(Glibc)
import Glibc
#endif

/// A failed Linux call: which call, its `errno`, and the path it was about (when there was one).
/// The one error of `SystemCalls`; each module wraps it in its own error where callers act on it.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    public var call: String
    public var errno: Int32
    public var path: String?

    public init(call: String, errno: Int32, path: String? = nil) {
        self.call = call
        self.errno = errno
        self.path = path
    }

    /// `call path: reason`, or `call: reason` without a path.
    public var description: String {
        let reason = String(cString: strerror(errno))
        return path.map { "\(call) \($0): \(reason)" } ?? "\(call): \(reason)"
    }

    /// The entry (or a folder on its way) does not exist.
    public var isNotFound: Bool { errno == ENOENT || errno == ENOTDIR }
}
