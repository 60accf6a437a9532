import Foundation
import Glibc
import SpoolCore
import SpoolSystem
import Synchronization

/// Empty folders kept for reuse as claim token folders (`.spool/free/`).
///
/// Taking one is a `rename`; making a folder allocates an inode, and removing it later frees one.
/// On ext4 without a journal every inode allocation skips, one by one, the inodes freed in the last
/// minutes of its block group, so a stream of claims that each made and later removed a folder
/// slows itself down. Pooled folders never leave: a claim takes one, the publisher puts it back
/// once the payload has left it.
public final class FolderPool: Sendable {
    public static let directory = ".spool/free"

    /// The pool folder (absolute).
    public let path: String
    /// Folders beyond this many are removed instead of kept.
    public let capacity: Int
    private let names: Mutex<[String]>

    /// Adopts the folders already in the pool (left by earlier processes).
    public init(layout: SpoolLayout, capacity: Int = 4096) {
        path = layout.path(Self.directory)
        self.capacity = capacity
        let existing = (try? StoreCall.entries(of: layout.path(Self.directory))) ?? []
        names = Mutex(existing.filter { $0.type == UInt8(DT_DIR) && !$0.name.hasPrefix(".") }.map(\.name))
    }

    /// Folders in the pool now (as this process knows it).
    public var count: Int { names.withLock { $0.count } }

    /// Moves a pooled folder to `destination` (which must not exist). False when the pool is
    /// empty or the move failed: the caller makes the folder itself.
    func take(to destination: String) -> Bool {
        while let name = names.withLock({ $0.popLast() }) {
            if rename(path + "/" + name, destination) == 0 { return true }
            let error = errno
            if error == ENOENT, (try? StoreCall.lstat(path + "/" + name)) == nil {
                continue  // another process sharing the root took it
            }
            names.withLock { $0.append(name) }
            return false
        }
        return false
    }

    /// Makes folders until the pool holds `count` (or as many as it can), so that the claims of
    /// the next burst need not make any.
    public func fill(to count: Int) {
        guard (try? StoreCall.makeDirectories(path)) != nil else { return }
        var missing = min(count, capacity) - self.count
        while missing > 0 {
            let name = UniqueName.make()
            guard mkdir(path + "/" + name, 0o755) == 0 else { return }
            names.withLock { $0.append(name) }
            missing -= 1
        }
    }

    /// Keeps `folder`, which must be empty, for a later claim. False when the pool is full or
    /// the move failed: the caller removes the folder itself.
    public func put(_ folder: String) -> Bool {
        guard count < capacity else { return false }
        let name = UniqueName.make()
        var moved = rename(folder, path + "/" + name) == 0
        if !moved, errno == ENOENT, (try? StoreCall.makeDirectories(path)) != nil {
            moved = rename(folder, path + "/" + name) == 0
        }
        if moved { names.withLock { $0.append(name) } }
        return moved
    }
}
