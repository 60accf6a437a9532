import Foundation
import SpoolSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A fresh folder under /tmp (`mkdtemp`), named after `prefix`.
public func makeTemporaryDirectory(prefix: String = "spool-test") throws -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw SystemError(call: "mkdtemp", errno: errno, path: "/tmp/\(prefix)-XXXXXX")
    }
    return String(cString: made)
}

/// Runs `body` with a fresh temporary folder that is always removed afterwards (without
/// following links: a test's hostile links never take the removal elsewhere).
/// The removal runs on a thread of its own: a test's tree may hold tens of thousands of files.
public func withTemporaryDirectory<T>(prefix: String = "spool-test", _ body: (String) async throws -> T) async throws -> T {
    let path = try makeTemporaryDirectory(prefix: prefix)
    let result: Result<T, any Error>
    do {
        result = .success(try await body(path))
    } catch {
        result = .failure(error)
    }
    await onThreadOfItsOwn { try? FileTree.removeTree(path) }
    return try result.get()
}

/// Writes `contents` to `path` in one open–write–close (creating parent folders).
public func writeFile(_ path: String, _ contents: String = "payload") throws {
    let parent = (path as NSString).deletingLastPathComponent
    try FileTree.makeDirectories(parent.isEmpty ? "." : parent)
    let fd = try SystemCalls.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
    defer { try? SystemCalls.close(fd) }
    try writeAll(fd, contents)
}

/// Writes all of `contents` to `fd`.
public func writeAll(_ fd: Int32, _ contents: String) throws {
    try SystemCalls.writeAll(fd, contents)
}

/// Sets `path`'s access and modification times to `secondsAgo` seconds ago (not following links).
public func setModificationTime(_ path: String, secondsAgo: Int) throws {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    var times = [timespec(tv_sec: now.tv_sec - secondsAgo, tv_nsec: 0), timespec(tv_sec: now.tv_sec - secondsAgo, tv_nsec: 0)]
    try SystemCalls.retrying("utimensat", path: path) { utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW) }
}

public func readFile(_ path: String) throws -> String {
    try String(contentsOf: URL(fileURLWithPath: path), encoding: .utf8)
}

/// Whether anything (a file, a folder, a dangling link) is at `path`.
public func exists(_ path: String) -> Bool {
    (try? SystemCalls.lstat(path)) != nil
}

public struct TimedOut: Error {
    public init() {}
}

/// Runs blocking `body` on its own thread; throws `TimedOut` if it takes longer than `seconds`
/// (the thread is then abandoned, but the test finishes).
public func withinTimeout<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    let resumed = Mutex(false)
    return try await withCheckedThrowingContinuation { continuation in
        let resume: @Sendable (Result<T, any Error>) -> Void = { result in
            if resumed.withLock({ done in defer { done = true }; return !done }) { continuation.resume(with: result) }
        }
        Thread.detachNewThread { resume(Result { try body() }) }
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { resume(.failure(TimedOut())) }
    }
}
