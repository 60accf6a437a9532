import Glibc
import SpoolSystem

/// The store's view of `SystemCalls`: the same calls, their failures as `SpoolStoreError`
/// (the module's one error type), so that callers here act on its codes.
enum StoreCall {
    /// Runs `body` until it returns something other than `-1` with `EINTR`; `-1` otherwise throws.
    @discardableResult
    static func call<T: FixedWidthInteger>(_ name: String, path: String? = nil, _ body: () -> T) throws -> T {
        do { return try SystemCalls.retrying(name, path: path, body) } catch { throw SpoolStoreError(error) }
    }

    static func lstat(_ path: String) throws -> stat {
        do { return try SystemCalls.lstat(path) } catch { throw SpoolStoreError(error) }
    }

    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) throws -> Int32 {
        do { return try SystemCalls.open(path, flags, mode: mode) } catch { throw SpoolStoreError(error) }
    }

    static func close(_ fd: Int32) throws {
        do { try SystemCalls.close(fd) } catch { throw SpoolStoreError(error) }
    }

    /// `mkdir(2)`; `false` when something already exists at `path`.
    @discardableResult
    static func mkdir(_ path: String, mode: mode_t = 0o755) throws -> Bool {
        do { return try SystemCalls.mkdir(path, mode: mode) } catch { throw SpoolStoreError(error) }
    }

    static func rename(_ from: String, _ to: String) throws {
        do { try SystemCalls.rename(from, to) } catch { throw SpoolStoreError(error) }
    }

    static func fsyncDirectory(_ path: String) throws {
        do { try SystemCalls.fsyncDirectory(path) } catch { throw SpoolStoreError(error) }
    }

    /// `mkdir -p` (`FileTree.makeDirectories`).
    static func makeDirectories(_ path: String) throws {
        do { try FileTree.makeDirectories(path) } catch { throw SpoolStoreError(error) }
    }

    /// The UTF-8 names in a folder (`FileTree.entries`).
    static func entries(of path: String) throws -> [(name: String, type: UInt8)] {
        do { return try FileTree.entries(of: path) } catch { throw SpoolStoreError(error) }
    }

    /// `rm -rf` without following links (`FileTree.removeTree`).
    static func removeTree(_ path: String) throws {
        do { try FileTree.removeTree(path) } catch { throw SpoolStoreError(error) }
    }
}

extension SpoolStoreError {
    /// A failed system call, as the store reports it.
    init(_ error: SystemError) {
        self = .systemCall(error.call, errno: error.errno, path: error.path)
    }
}
