import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The process groups of the models a process is running, written down as empty files
/// (`<pgid>.<start time>`) in a folder of its own, so that whoever finds the process dead can
/// stop what it left running: `kill -9` of the daemon reaches neither its command models nor its
/// model servers, which would otherwise run on beside the retried attempts (and hold their ports).
///
/// The leader's start time (from `/proc/<pid>/stat`) guards against a reused PID: a group is
/// killed only when its leader is the process recorded, or when the leader is gone and the group
/// still has members (a group ID is not reused while the group has members).
public final class ProcessGroupRecord: Sendable {
    /// The folder of one owner's records.
    public let directory: String
    /// The record file of each group this process started and has not seen end.
    private let records = Mutex<[pid_t: String]>([:])

    public init(directory: String) {
        self.directory = directory
    }

    /// Records that group `pgid` (its leader's PID) is running. Best effort: a record that cannot
    /// be written only means the group is not stopped after a crash.
    func started(_ pgid: pid_t) {
        guard let start = Self.startTime(of: pgid) else { return }
        let path = "\(directory)/\(pgid).\(start)"
        var fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0, errno == ENOENT {
            _ = mkdir((directory as NSString).deletingLastPathComponent, 0o755)
            _ = mkdir(directory, 0o700)
            fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        }
        guard fd >= 0 else { return }
        close(fd)
        records.withLock { $0[pgid] = path }
    }

    /// Forgets group `pgid` (it has ended).
    func finished(_ pgid: pid_t) {
        if let path = records.withLock({ $0.removeValue(forKey: pgid) }) { unlink(path) }
    }

    /// Kills (SIGKILL) every recorded group of a dead owner that is still running, then removes
    /// the records. Returns how many groups were killed.
    @discardableResult
    public func killLeftovers() -> Int {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return 0 }
        var killed = 0
        for name in names {
            let parts = name.split(separator: ".")
            if parts.count == 2, let pgid = pid_t(parts[0]), pgid > 1, let start = UInt64(parts[1]) {
                let leaderIsOurs = Self.startTime(of: pgid) == start
                let leaderGone = Self.startTime(of: pgid) == nil
                if leaderIsOurs || (leaderGone && ProcessGroup.hasLivingMembers(pgid)) {
                    if ProcessGroup.signal(pgid, SIGKILL) { killed += 1 }
                }
            }
            unlink("\(directory)/\(name)")
        }
        rmdir(directory)
        return killed
    }

    /// A process's start time in clock ticks since boot; nil when it is gone.
    static func startTime(of pid: pid_t) -> UInt64? {
        ProcessGroup.status(of: pid)?.startTime
    }
}
