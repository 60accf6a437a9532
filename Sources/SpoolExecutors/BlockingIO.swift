import Dispatch
import Foundation
import Synchronization
import CSpoolSystem

#if canImport(Glibc)
import Glibc
import SpoolSystem
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
            SystemCalls.startWriteback(fd)  // advisory: the fsync at the end is what counts
        }
    }
}
