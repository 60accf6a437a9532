import Dispatch
import Glibc
import SpoolCore
import Synchronization

/// Finds payloads by scanning the drop folders every `interval` seconds (`--poll SECONDS`), for
/// filesystems where inotify is blind (NFS, some FUSE and container mounts).
///
/// Without close events, a file counts as finished once two consecutive scans saw the same
/// inode, size and modification time: a file still being written in place is not taken early
/// (unless its writer pauses for a whole interval — the README's drop contract, write under a
/// temporary name and `mv` it in, avoids even that). Each stable file is reported once; if it is
/// replaced or dropped again after a claim, it is reported again.
public final class PollingIntake: IntakeSource {
    private let folders: [DropFolder]
    private let interval: Double
    private let onError: @Sendable (SpoolIntakeError) -> Void
    private let sessions = Mutex<[ObjectIdentifier: PollSession]>([:])

    /// Scans the given drop folders (absolute paths) every `interval`.
    ///
    /// - Parameters:
    ///   - interval: time between scans (`--poll SECONDS`; tests use a few hundredths).
    ///   - onError: hears about drop folders that cannot be created or read.
    public init(
        folders: [(endpoint: String, directory: String)],
        interval: Duration,
        onError: @escaping @Sendable (SpoolIntakeError) -> Void = { _ in }
    ) {
        self.folders = DropFolder.from(folders)
        self.interval = max(interval.seconds, 0.001)
        self.onError = onError
    }

    /// Stable files as they are found (missing drop folders are created first). Each call starts an independent scanner; its stream ends
    /// when `stop()` is called or the consuming task is cancelled.
    public func candidates() -> AsyncStream<IntakeCandidate> {
        let (stream, continuation) = AsyncStream.makeStream(of: IntakeCandidate.self)
        for folder in folders {
            do { try SystemCall.makeDirectories(folder.directory) } catch let error as SpoolIntakeError { onError(error) } catch {}
        }
        let session = PollSession(
            scanners: folders.map { DirectoryScanner(endpoint: $0.endpoint, directory: $0.directory) },
            onError: onError
        )
        session.timer.setEventHandler { [session] in
            for candidate in session.scanOnce() { continuation.yield(candidate) }
        }
        let key = ObjectIdentifier(session)
        session.timer.setCancelHandler { [weak self] in
            self?.sessions.withLock { _ = $0.removeValue(forKey: key) }
            continuation.finish()
        }
        continuation.onTermination = { [session] _ in session.timer.cancel() }
        sessions.withLock { $0[key] = session }
        session.timer.schedule(deadline: .now(), repeating: interval, leeway: .milliseconds(Int(interval * 100)))
        session.timer.resume()
        return stream
    }

    /// Stops every scanner and finishes their streams (after a scan in progress, if any).
    public func stop() {
        for session in sessions.withLock({ Array($0.values) }) { session.timer.cancel() }
    }

    /// One scan: every candidate with its signature (`lstat`, so links are not followed).
    static func snapshot(
        _ scanners: [DirectoryScanner],
        onError: (SpoolIntakeError) -> Void
    ) -> [IntakeCandidate: FileSignature] {
        var result: [IntakeCandidate: FileSignature] = [:]
        for scanner in scanners {
            for candidate in scanner.scan(onError: onError) {
                guard let info = try? SystemCall.lstat(scanner.directory + "/" + candidate.relativePath) else { continue }
                result[candidate] = FileSignature(
                    device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
                    modifiedSeconds: info.st_mtim.tv_sec, modifiedNanoseconds: info.st_mtim.tv_nsec
                )
            }
        }
        return result
    }

    /// One stream's timer and tracker. `tracker` is only touched by the timer's handler, on its
    /// serial queue; `DispatchSource.cancel()` is thread-safe — hence `@unchecked Sendable`.
    private final class PollSession: @unchecked Sendable {
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "spool.intake.poll"))
        let scanners: [DirectoryScanner]
        let onError: @Sendable (SpoolIntakeError) -> Void
        var tracker = StabilityTracker()

        init(scanners: [DirectoryScanner], onError: @escaping @Sendable (SpoolIntakeError) -> Void) {
            self.scanners = scanners
            self.onError = onError
        }

        func scanOnce() -> [IntakeCandidate] {
            tracker.observe(PollingIntake.snapshot(scanners, onError: onError))
        }
    }
}
