import CSpoolSystem
import Foundation
import SpoolCore
import SpoolSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Deferred deletion of succeeded payloads.
///
/// Deleting a file right after processing it makes the next file creation slow on ext4 without a
/// journal (the allocator skips every inode freed in the last seconds, so a burst of N files costs
/// O(N²)). Small payloads are therefore moved aside with one rename and deleted together when the
/// queue is idle; large ones (where the deletion is cheap next to the work) go at once. The token
/// folder a payload leaves goes back to the `FolderPool` for the next claim.
///
/// Better still is not to free the inode at all: a payload file in the trash is recycled as the
/// next request's output file (`recycle(to:)`) when it is plainly ours to reuse — a regular
/// file, owned by this process's user, with no other link and no extended attributes (ACLs,
/// security labels). Its content is truncated away first, or, for a model that writes its output
/// in order itself (the builtin ones), cut to the output's length after: a steady stream of small
/// requests then allocates and frees no inode and, mostly, no block at all.
public final class Trash: Sendable {
    public static let directory = ".spool/trash"
    /// Payloads at least this large are deleted at once.
    static let deferLimit: Int64 = 1 << 20
    /// Past this many pending entries the trash is emptied even while busy.
    static let maxPending = 50_000

    public let path: String
    let folders: FolderPool?
    /// How long the queue must have been quiet before the trash is emptied.
    static let quietPeriod = Duration.seconds(2)

    /// Recyclable files kept (emptied) when the trash is emptied, for the next burst.
    static let recycleStock = 1024

    private let pending = Atomic<Int>(0)
    private let lastActivity = Mutex<ContinuousClock.Instant>(.now)
    /// Names in the trash of payload files this process put there: candidates for recycling.
    private let recyclable = Mutex<[String]>([])
    /// The mode a new output gets (0644 less the process's umask).
    private let outputMode: mode_t

    public init(layout: SpoolLayout, folders: FolderPool? = nil) {
        path = layout.path(Self.directory)
        self.folders = folders
        outputMode = 0o644 & ~Self.processUmask()
    }

    /// The umask, read from /proc (calling umask(2) to read it would change it for a moment
    /// under other threads' feet); 022 when it cannot be read.
    private static func processUmask() -> mode_t {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Umask:") }),
              let value = mode_t(line.dropFirst("Umask:".count).trimmingCharacters(in: .whitespaces), radix: 8)
        else { return 0o022 }
        return value
    }

    /// Makes empty files until `count` wait to be recycled (or as many as it can), so that the
    /// outputs of the next burst need not allocate any.
    public func stock(to count: Int) {
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else { return }
        var missing = min(count, Self.recycleStock) - recyclable.withLock { $0.count }
        while missing > 0 {
            let name = UniqueName.make()
            let fd = open("\(path)/\(name)", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard fd >= 0 else { return }
            close(fd)
            recyclable.withLock { $0.append(name) }
            missing -= 1
        }
    }

    /// Moves a recyclable payload file from the trash to `destination` and returns it open for
    /// writing at its start; nil when there is none (the caller creates the file).
    /// - Parameter emptied: truncate it to nothing first. Without, it keeps its old bytes (and
    ///   the blocks that hold them) and no wider a mode than they had, and the caller must cut it
    ///   to the length it writes with `cutRecycled` before anyone reads it: freeing blocks waits
    ///   for the disk where the filesystem is mounted with `discard`, and the output would
    ///   allocate them again.
    public func recycle(to destination: String, emptied: Bool = true) -> Int32? {
        while let name = recyclable.withLock({ $0.popLast() }) {
            let source = "\(path)/\(name)"
            let fd = open(source, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            guard fd >= 0 else { continue }
            var info = stat()
            guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_nlink == 1,
                  info.st_uid == geteuid(), spool_flistxattr_size(fd) == 0,
                  !emptied || ftruncate(fd, 0) == 0,
                  case let mode = emptied ? outputMode : outputMode & info.st_mode,  // old bytes: never more readable
                  info.st_mode & 0o7777 == mode || fchmod(fd, mode) == 0,
                  fcntl(fd, F_SETFL, 0) == 0,  // no O_NONBLOCK: it was for the open; models inherit the file
                  rename(source, destination) == 0
            else {
                close(fd)
                continue  // not ours to reuse: it stays in the trash and is deleted with it
            }
            return fd
        }
        return nil
    }

    /// Cuts a file recycled without emptying to what was written into it (its descriptor's
    /// offset: the writer wrote in order from its start), then gives it the output mode: none of
    /// its old bytes are left, so it may now be as readable as any output.
    public func cutRecycled(_ fd: Int32, path: String) throws(SystemError) {
        let end = lseek(fd, 0, SEEK_CUR)
        guard end >= 0 else { throw SystemError(call: "lseek", errno: errno, path: path) }
        guard ftruncate(fd, end) == 0 else { throw SystemError(call: "ftruncate", errno: errno, path: path) }
        guard fchmod(fd, outputMode) == 0 else { throw SystemError(call: "fchmod", errno: errno, path: path) }
    }

    /// Removes a finished claim, now or later: its token folder `directory`, which holds
    /// `payload` (directly, or below sub-folders) and perhaps a sidecar.
    /// - Parameters:
    ///   - succeeded: the payload went through a model (a regular file), so its inode may be
    ///     recycled.
    ///   - mayHaveSidecar: the payload was dropped, perhaps with a metadata sidecar (a submitted
    ///     one never has one: no `unlink` that fails is spent on it).
    public func discard(_ directory: String, payload: String, bytes: Int64, succeeded: Bool, mayHaveSidecar: Bool = true) {
        if let folders, (payload as NSString).deletingLastPathComponent == directory {
            // The payload alone leaves; the emptied folder is kept for the next claim.
            let gone = bytes < Self.deferLimit
                ? moveAside(payload, recyclable: succeeded)
                : (try? FileManager.default.removeItem(atPath: payload)) != nil
            if gone {
                if mayHaveSidecar { _ = unlink(directory + "/" + PayloadClaimer.sidecarName) }
                if folders.put(directory) { return }
            }
        } else if bytes < Self.deferLimit, moveAside(directory) {
            return
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Moves `item` into the trash; false when it could not be moved.
    /// - Parameter recyclable: `item` is a payload file that may become an output.
    private func moveAside(_ item: String, recyclable: Bool = false) -> Bool {
        let name = UniqueName.make()
        let target = "\(path)/\(name)"
        var moved = rename(item, target) == 0
        if !moved, errno == ENOENT, mkdir(path, 0o755) == 0 || errno == EEXIST {
            moved = rename(item, target) == 0
        }
        if moved {
            pending.add(1, ordering: .relaxed)
            if recyclable { self.recyclable.withLock { $0.append(name) } }
        }
        return moved
    }

    /// Whether enough is pending that the trash should be emptied even though work continues.
    public var isOverfull: Bool { pending.load(ordering: .relaxed) >= Self.maxPending }

    /// Notes that requests are arriving or running: deletions wait.
    public func noteActivity() {
        lastActivity.withLock { $0 = .now }
    }

    /// Empties the trash if anything was put in it and the queue has been quiet for a while.
    public func emptyIfDue() {
        guard pending.load(ordering: .relaxed) > 0 else { return }
        let due = lastActivity.withLock { last in
            guard ContinuousClock.now - last >= Self.quietPeriod else { return false }
            last = .now
            return true
        }
        if due { empty() }
    }

    /// Deletes everything in the trash (also what other processes, or a crash, left there), but
    /// for up to `recycleStock` recyclable files, whose content goes and whose inode stays for
    /// the next outputs.
    public func empty() {
        pending.store(0, ordering: .relaxed)
        let kept = Set(recyclable.withLock { names in
            names = Array(names.suffix(Self.recycleStock))
            return names
        })
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: path) else { return }
        for entry in entries where !kept.contains(entry) {
            try? FileManager.default.removeItem(atPath: "\(path)/\(entry)")
        }
        for name in kept {
            // Most are empty already (a recycled file is emptied as it is taken): one lstat each.
            var before = stat()
            if lstat("\(path)/\(name)", &before) == 0, (before.st_mode & S_IFMT) == S_IFREG, before.st_size == 0 { continue }
            let fd = open("\(path)/\(name)", O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            var info = stat()
            if fd >= 0, fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, ftruncate(fd, 0) == 0 {
                close(fd)
                continue
            }
            if fd >= 0 { close(fd) }
            recyclable.withLock { $0.removeAll { $0 == name } }
            try? FileManager.default.removeItem(atPath: "\(path)/\(name)")
        }
    }
}
