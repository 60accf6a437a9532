import Dispatch
import Foundation
import Glibc
import SpoolCore
import SpoolSystem

/// The state behind an `InotifyIntake`: the inotify descriptor, which folder each watch stands
/// for, and the stream being fed.
///
/// Confinement: after `init` returns, every stored property is used only on `queue` (a serial
/// queue that also runs the dispatch source's handlers). That is what `@unchecked Sendable`
/// relies on; the methods that other threads call (`start`, `requestStop`, `waitUntilClosed`)
/// only hop onto the queue.
final class InotifyIntakeSession: @unchecked Sendable {
    /// What one watch descriptor stands for.
    struct Watch {
        var folder: Int
        /// Relative to the drop folder; empty for the drop folder itself.
        var relative: String
        /// The folder's identity when watched, to tell a rename inside the tree from a move away.
        var device: UInt64
        var inode: UInt64
    }

    enum State { case idle, running, stopped }

    let folders: [DropFolder]
    let queue = DispatchQueue(label: "spool.intake.inotify")
    let watcher: InotifyWatcher
    let onError: @Sendable (SpoolIntakeError) -> Void
    var watches: [Int32: Watch] = [:]
    var state = State.idle
    var source: DispatchSourceRead?
    var continuation: AsyncStream<IntakeCandidate>.Continuation?
    /// Which `candidates()` call the running stream belongs to.
    var streamID: UUID?
    /// Scanned files held back until they settle, and the timer that re-examines them.
    var settling: SettlingFiles
    var settleTimer: DispatchSourceTimer?
    /// How many overflows forced a full rescan (a diagnostic; tests read it).
    var rescans = 0
    /// Sub-folders that could not be watched or read (permissions, a path longer than PATH_MAX),
    /// by drop folder and relative path: retried every `retryInterval` until they can be.
    var blind: Set<BlindFolder> = []
    var retryTimer: DispatchSourceTimer?
    /// How often folders in `blind` are tried again.
    static let retryInterval: DispatchTimeInterval = .seconds(5)

    struct BlindFolder: Hashable {
        var folder: Int
        var relative: String
    }
    /// Opened once the descriptor is closed. (Not a `DispatchGroup`: libdispatch traps when a
    /// group is freed while entered, which an intake dropped unstarted would do.)
    private let closed = Latch()

    /// Creates missing drop folders and adds a watch on every folder below them — all watches
    /// exist before `start` scans, so nothing dropped in between is missed.
    init(folders: [DropFolder], settle: Double, onError: @escaping @Sendable (SpoolIntakeError) -> Void) throws {
        self.folders = folders
        settling = SettlingFiles(settle: settle)
        self.onError = onError
        watcher = try InotifyWatcher()
        for (index, folder) in folders.enumerated() {
            try SystemCall.makeDirectories(folder.directory)
            // A drop folder Spool cannot watch is an error at start. A sub-folder it cannot watch
            // or read (anyone who drops files can make one) is reported, tried again every few
            // seconds, and never stops the daemon.
            guard try addWatch(folder: index, relative: "", strict: true) != nil else { continue }
            scanner(index).walk(under: "", onError: { [self] in noteBlind(index, $0) }, enteringDirectory: { [self] relative in
                guard !relative.isEmpty else { return }
                _ = try? addWatch(folder: index, relative: relative, strict: false)
            }, file: { _, _ in })
        }
    }

    func scanner(_ folder: Int) -> DirectoryScanner {
        DirectoryScanner(endpoint: folders[folder].endpoint, directory: folders[folder].directory)
    }

    /// Starts delivering to `continuation`: scans every drop folder, then reads events.
    /// A session runs once; a later start (another `id`) finds its stream finished at once.
    func start(_ continuation: AsyncStream<IntakeCandidate>.Continuation, id: UUID) {
        queue.async { [self] in
            guard state == .idle else { return continuation.finish() }
            state = .running
            streamID = id
            self.continuation = continuation
            for index in folders.indices { scan(folder: index, under: "", rewatch: false) }
            let source = DispatchSource.makeReadSource(fileDescriptor: watcher.descriptor, queue: queue)
            source.setEventHandler { [self] in readEvents() }
            source.setCancelHandler { [self] in finish() }
            self.source = source
            source.resume()
        }
    }

    /// Asks the session to stop: the descriptor is closed and the stream finished. Never waits,
    /// so it is safe from the stream's `onTermination`. With `id`, only the stream started with
    /// that id may stop the session (a rejected second stream ending must not end the first).
    func requestStop(from id: UUID? = nil) {
        queue.async { [self] in
            if let id, id != streamID, state == .running { return }
            switch state {
            case .idle:
                state = .stopped
                finish()
            case .running:
                state = .stopped
                source?.cancel()
            case .stopped:
                break
            }
        }
    }

    /// Blocks until the descriptor is closed. Not to be called on `queue`.
    func waitUntilClosed() {
        dispatchPrecondition(condition: .notOnQueue(queue))
        closed.wait()
    }

    /// A one-way gate: `wait` blocks until `open` has been called (once or more).
    private final class Latch: @unchecked Sendable {
        private let condition = NSCondition()
        private var isOpen = false

        func open() {
            condition.lock()
            isOpen = true
            condition.broadcast()
            condition.unlock()
        }

        func wait() {
            condition.lock()
            while !isOpen { condition.wait() }
            condition.unlock()
        }
    }

    /// Whether the inotify descriptor has been closed.
    var isClosed: Bool { queue.sync { watcher.isClosed } }

    private func finish() {
        guard !watcher.isClosed else { return }
        watcher.close()
        source = nil
        settleTimer?.cancel()
        settleTimer = nil
        retryTimer?.cancel()
        retryTimer = nil
        watches = [:]
        continuation?.finish()
        continuation = nil
        closed.open()
    }

    /// Watches the folder `relative` of drop folder `folder`. Returns the watch descriptor, or
    /// `nil` when the folder is gone; other failures are thrown (`strict`) or reported.
    @discardableResult
    func addWatch(folder: Int, relative: String, strict: Bool) throws -> Int32? {
        let path = folders[folder].path(relative)
        do {
            let isDropFolder = relative.isEmpty
            let watch = try watcher.addWatch(path, mask: isDropFolder ? InotifyMask.dropFolder : InotifyMask.subfolder)
            let info = identity(path, follow: isDropFolder)
            watches[watch] = Watch(folder: folder, relative: relative, device: info?.device ?? 0, inode: info?.inode ?? 0)
            return watch
        } catch let error as SpoolIntakeError {
            if strict { throw error }
            if !error.isNotFound { noteBlind(folder, error, relative: relative) }
            return nil
        }
    }

    /// Records a sub-folder that could not be watched or read, reports it the first time, and
    /// makes sure the retry timer runs.
    func noteBlind(_ folder: Int, _ error: SpoolIntakeError, relative given: String? = nil) {
        let directory = folders[folder].directory
        guard let relative = given ?? error.path.flatMap({ path in
            path.hasPrefix(directory + "/") ? String(path.dropFirst(directory.count + 1)) : nil
        }) else { return onError(error) }
        guard blind.insert(BlindFolder(folder: folder, relative: relative)).inserted else { return }
        onError(error)
        guard retryTimer == nil else { return }
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + Self.retryInterval, repeating: Self.retryInterval)
        timer.setEventHandler { [self] in retryBlind() }
        retryTimer = timer
        timer.resume()
    }

    /// Tries the blind folders again: one that can now be watched and read is scanned (its
    /// files are offered once running) and leaves the set.
    func retryBlind() {
        for entry in blind {
            let path = folders[entry.folder].path(entry.relative)
            guard identity(path, follow: false) != nil else {
                blind.remove(entry)  // gone (or no longer a folder): nothing to watch
                continue
            }
            do {
                guard try addWatch(folder: entry.folder, relative: entry.relative, strict: true) != nil else {
                    blind.remove(entry)
                    continue
                }
            } catch {
                continue
            }
            guard let stream = opendir(path) else { continue }
            closedir(stream)
            blind.remove(entry)
            if state == .running {
                scanner(entry.folder).walk(under: entry.relative, onError: { [self] in noteBlind(entry.folder, $0) }, enteringDirectory: { [self] relative in
                    _ = try? addWatch(folder: entry.folder, relative: relative, strict: false)
                }, file: { [self] relativePath, type in
                    offerScanned(entry.folder, relativePath, type: type)
                })
            }
        }
        if blind.isEmpty {
            retryTimer?.cancel()
            retryTimer = nil
        }
    }

    /// The device and inode of the folder at `path` now, if it is a folder.
    func identity(_ path: String, follow: Bool) -> (device: UInt64, inode: UInt64)? {
        var info = stat()
        let flags: Int32 = follow ? 0 : AT_SYMLINK_NOFOLLOW
        guard (try? SystemCall.call("fstatat", path: path) { fstatat(AT_FDCWD, path, &info, flags) }) != nil,
              info.isDirectory else { return nil }
        return (UInt64(info.st_dev), UInt64(info.st_ino))
    }

    /// Yields every candidate below `relative` (through `offerScanned`). With `rewatch`, each folder is watched before it
    /// is listed (a new sub-folder, or a rescan after an overflow); the watches are returned.
    @discardableResult
    func scan(folder: Int, under relative: String, rewatch: Bool) -> Set<Int32> {
        var seen = Set<Int32>()
        scanner(folder).walk(under: relative, onError: onError, enteringDirectory: { directory in
            if rewatch, let watch = try? addWatch(folder: folder, relative: directory, strict: false) {
                seen.insert(watch)
            }
        }, file: { path, type in
            offerScanned(folder, path, type: type)
        })
        return seen
    }
}
