import Glibc
import SpoolSystem

/// The intake's view of `SystemCalls`: the same calls, their failures as `SpoolIntakeError`
/// (the module's one error type), so that callers here act on its codes.
enum SystemCall {
    /// Runs `body` until it returns something other than `-1` with `EINTR`; `-1` otherwise throws.
    @discardableResult
    static func call<T: FixedWidthInteger>(_ name: String, path: String? = nil, _ body: () -> T) throws -> T {
        do { return try SystemCalls.retrying(name, path: path, body) } catch { throw SpoolIntakeError(error) }
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
        do { return try SystemCalls.pointer(name, path: path, body) } catch { throw SpoolIntakeError(error) }
    }

    static func lstat(_ path: String) throws -> stat {
        do { return try SystemCalls.lstat(path) } catch { throw SpoolIntakeError(error) }
    }

    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) throws -> Int32 {
        do { return try SystemCalls.open(path, flags, mode: mode) } catch { throw SpoolIntakeError(error) }
    }

    static func close(_ fd: Int32) throws {
        do { try SystemCalls.close(fd) } catch { throw SpoolIntakeError(error) }
    }

    /// `mkdir(2)`; `false` when something already exists at `path`.
    @discardableResult
    static func mkdir(_ path: String, mode: mode_t = 0o755) throws -> Bool {
        do { return try SystemCalls.mkdir(path, mode: mode) } catch { throw SpoolIntakeError(error) }
    }

    /// `mkdir -p` (`FileTree.makeDirectories`).
    static func makeDirectories(_ path: String) throws {
        do { try FileTree.makeDirectories(path) } catch { throw SpoolIntakeError(error) }
    }
}

extension SpoolIntakeError {
    /// A failed system call, as the intake reports it.
    init(_ error: SystemError) {
        self = .systemCall(error.call, errno: error.errno, path: error.path)
    }
}
