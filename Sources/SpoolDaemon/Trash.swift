import Foundation
import SpoolCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Deferred deletion of succeeded payloads.
///
/// Deleting a file right after processing it makes the next file creation slow on ext4 without a
/// journal (the allocator skips every inode freed in the last seconds, so a burst of N files costs
/// O(N²)). Small payloads are therefore moved aside with one rename and deleted together when the
/// queue is idle; large ones (where the deletion is cheap next to the work) go at once.
final class Trash: Sendable {
    static let directory = ".spool/trash"
    /// Payloads at least this large are deleted at once.
    static let deferLimit: Int64 = 1 << 20
    /// Past this many pending entries the trash is emptied even while busy.
    static let maxPending = 50_000

    let path: String
    /// How long the queue must have been quiet before the trash is emptied.
    static let quietPeriod = Duration.seconds(2)

    private let pending = Atomic<Int>(0)
    private let lastActivity = Mutex<ContinuousClock.Instant>(.now)

    init(layout: SpoolLayout) {
        path = layout.path(Self.directory)
    }

    /// Removes `directory` (a claim), now or later.
    func discard(_ directory: String, bytes: Int64) {
        if bytes < Self.deferLimit {
            let target = "\(path)/\(UUID().uuidString)"
            if rename(directory, target) == 0 {
                pending.add(1, ordering: .relaxed)
                return
            }
            if errno == ENOENT {
                if mkdir(path, 0o755) == 0 || errno == EEXIST, rename(directory, target) == 0 {
                    pending.add(1, ordering: .relaxed)
                    return
                }
            }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Whether enough is pending that the trash should be emptied even though work continues.
    var isOverfull: Bool { pending.load(ordering: .relaxed) >= Self.maxPending }

    /// Notes that requests are arriving or running: deletions wait.
    func noteActivity() {
        lastActivity.withLock { $0 = .now }
    }

    /// Empties the trash if anything was put in it and the queue has been quiet for a while.
    func emptyIfDue() {
        guard pending.load(ordering: .relaxed) > 0 else { return }
        let due = lastActivity.withLock { last in
            guard ContinuousClock.now - last >= Self.quietPeriod else { return false }
            last = .now
            return true
        }
        if due { empty() }
    }

    /// Deletes everything in the trash (also what other processes, or a crash, left there).
    func empty() {
        pending.store(0, ordering: .relaxed)
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: path) else { return }
        for entry in entries {
            try? FileManager.default.removeItem(atPath: "\(path)/\(entry)")
        }
    }
}
