import Dispatch

/// A thread of its own for a stage's blocking file-system work (a batch's flushes, its
/// renames). The cooperative pool has one thread per core; a task blocked there in `fdatasync`
/// would leave every other task of the daemon one thread short for milliseconds.
final class BlockingLane: Sendable {
    private let queue: DispatchQueue

    init(_ label: String) {
        queue = DispatchQueue(label: label)
    }

    /// Runs `body` on the lane's thread and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: body()) }
        }
    }
}
