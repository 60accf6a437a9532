import Dispatch
import Foundation
import Synchronization
import CSpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// Runs blocking file work (read/write loops over a payload) on threads of its own, so the
/// cooperative pool that runs the daemon's tasks is never blocked by a large payload.
enum BlockingIO {
    private static let queue = DispatchQueue(label: "spool.executors.blocking-io", attributes: .concurrent)

    /// Runs `body` off the cooperative pool. Task cancellation sets the flag `body` receives,
    /// which it checks between chunks.
    static func run<T: Sendable>(_ body: @escaping @Sendable (CancellationFlag) -> T) async -> T {
        let flag = CancellationFlag()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                queue.async { continuation.resume(returning: body(flag)) }
            }
        } onCancel: {
            flag.cancel()
        }
    }
}

/// Set when the task waiting for blocking work is cancelled.
final class CancellationFlag: Sendable {
    private let value = Atomic<Bool>(false)

    func cancel() { value.store(true, ordering: .relaxed) }
    var isCancelled: Bool { value.load(ordering: .relaxed) }
}

/// Chunked reads and full writes on descriptors, retrying EINTR.
enum FileIO {
    struct Error: Swift.Error {
        var call: String
        var errno: Int32
        var message: String { "\(call) failed: \(String(cString: strerror(errno)))" }
    }

    /// Reads up to `buffer.count` bytes; 0 at end of file.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Error) -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno != EINTR { throw Error(call: "read", errno: errno) }
        }
    }

    /// Writes all of `bytes`.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(Error) {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw Error(call: "write", errno: errno)
            }
            offset += n
        }
    }

    static func writeAll(_ fd: Int32, _ string: String) throws(Error) {
        var failure: Error?
        Array(string.utf8).withUnsafeBytes { bytes in
            do throws(Error) { try writeAll(fd, bytes) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Copies up to `count` bytes in the kernel; returns bytes copied (0 at end of input).
    static func copyRange(from input: Int32, to output: Int32, count: Int) throws(Error) -> Int {
        while true {
            let n = spool_copy_file_range(input, output, count)
            if n >= 0 { return n }
            if errno != EINTR { throw Error(call: "copy_file_range", errno: errno) }
        }
    }
}

/// Starts the kernel writing an output to disk while it is still being produced, every `step`
/// bytes: the fsync before publication then waits for the last few MiB instead of the whole file,
/// and a large output never piles up gigabytes of dirty pages.
struct Writeback {
    static let step = 8 << 20
    let fd: Int32
    private var unstarted = 0

    init(_ fd: Int32) {
        self.fd = fd
    }

    mutating func wrote(_ bytes: Int) {
        unstarted += bytes
        if unstarted >= Self.step {
            unstarted = 0
            _ = spool_start_writeback(fd)  // advisory: the fsync at the end is what counts
        }
    }
}
