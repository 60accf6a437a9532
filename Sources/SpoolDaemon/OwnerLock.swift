import Foundation
import SpoolCore

#if canImport(Glibc)
import Glibc
import SpoolSystem
#endif

/// Proves a process is alive to the others sharing a spool root: each process holds an exclusive
/// `flock` on `.spool/locks/<owner>.lock` for as long as it runs; the kernel drops it when the
/// process dies, however it dies. A rescuer that can take the lock knows the owner is gone.
public final class OwnerLock: Sendable {
    public let owner: String
    private let fd: Int32
    private let path: String

    /// Creates and locks this process's owner file.
    public init(layout: SpoolLayout, owner: String) throws {
        let directory = layout.path(SpoolLayout.locksDirectory)
        try SystemCalls.makeDirectories(directory)
        self.owner = owner
        path = "\(directory)/\(owner).lock"
        fd = try SystemCalls.open(path, O_RDWR | O_CREAT)
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let e = errno
            close(fd)
            throw SystemError(call: "flock", errno: e, path: path)
        }
    }

    deinit {
        _ = unlink(path)
        close(fd)
    }

    /// Whether the process that owns `owner` is still running.
    public static func isAlive(layout: SpoolLayout, owner: String) -> Bool {
        let path = "\(layout.path(SpoolLayout.locksDirectory))/\(owner).lock"
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 {
            // Nobody holds it: the owner died. Remove the stale file while we hold the lock.
            _ = unlink(path)
            return false
        }
        return true
    }

    /// Whether the lock file of any of `owners` is held now, read from `/proc/locks` without
    /// touching the files (a probe by `flock` could delay a process taking its lock at that very
    /// moment, and `isAlive` removes files it finds unheld). A lock is known by its file's inode:
    /// an unrelated lock on another device with the same inode number counts as held, which only
    /// errs towards "alive".
    static func anyHeld(layout: SpoolLayout, owners: [String]) -> Bool {
        let folder = layout.path(SpoolLayout.locksDirectory)
        let inodes = Set(owners.compactMap { owner -> UInt64? in
            var info = stat()
            return lstat("\(folder)/\(owner).lock", &info) == 0 ? UInt64(info.st_ino) : nil
        })
        guard !inodes.isEmpty, let table = try? String(contentsOfFile: "/proc/locks", encoding: .utf8) else { return false }
        return table.split(separator: "\n").contains { line in
            // "1: FLOCK  ADVISORY  WRITE 1234 fe:00:16221326 0 EOF"
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[1] == "FLOCK", let inode = fields[5].split(separator: ":").last.flatMap({ UInt64($0) }) else {
                return false
            }
            return inodes.contains(inode)
        }
    }

    /// A fresh owner name for this process: its host, its pid and a unique suffix (hosts sharing
    /// a root through PostgreSQL tell their owners apart, and a user reads where a request runs).
    public static func newOwnerName(ids: InferenceIDGenerator) -> String {
        "\(hostName)-\(getpid())-\(ids.next())"
    }

    /// The host's name as an owner carries it (`SPOOL_HOST_ID` when set, else the host name up
    /// to its first dot): letters, digits, `-` and `_` (a dot separates the owner in claim
    /// tokens), at most 40.
    static let hostName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        let name = ProcessInfo.processInfo.environment["SPOOL_HOST_ID"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (gethostname(&buffer, buffer.count - 1) == 0 ? String(cString: buffer) : "host")
        let cleaned = String(name.prefix { $0 != "." }.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }.prefix(40))
        return cleaned.isEmpty ? "host" : cleaned
    }()
}
