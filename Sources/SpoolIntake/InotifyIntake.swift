import Foundation
import SpoolCore

/// Finds payloads with the kernel's inotify API: a file is a candidate when it is closed after
/// writing (`IN_CLOSE_WRITE`) or moved in (`IN_MOVED_TO`) — never while still being written — and
/// its name is not hidden or temporary (`DropRules`).
///
/// Every sub-folder is watched. At `init`, missing drop folders are created and all watches are
/// added; `candidates()` then scans every folder, so files present at start-up, or dropped
/// during it, are found. A new sub-folder is watched first and scanned second. When the kernel's
/// event queue overflows, everything is rescanned. A drop folder deleted while watched is made
/// again. A scan cannot tell a finished file from one still being written, so a regular file a
/// scan finds freshly modified is held back until it settles (see `settle`). Candidates may repeat (a rescan finds files already reported); claims are atomic, so
/// that is harmless.
public final class InotifyIntake: IntakeSource {
    private let session: InotifyIntakeSession

    /// Watches the given drop folders (absolute paths), creating any that are missing.
    ///
    /// - Parameters:
    ///   - settle: a regular file found by a scan rather than an event, and modified less than
    ///     this long ago, might still be open for writing: it is reported once unchanged for this
    ///     long, or at its close event, whichever is first. Default 1 second.
    ///   - onError: hears about problems that are not fatal once running: a sub-folder
    ///   that cannot be read or watched (permissions, `fs.inotify.max_user_watches`), a drop
    ///   folder that vanished with its parent.
    /// - Throws: `SpoolIntakeError` when inotify is unavailable or a folder cannot be created,
    ///   read or watched at start.
    public init(
        folders: [(endpoint: String, directory: String)],
        settle: Duration = .seconds(1),
        onError: @escaping @Sendable (SpoolIntakeError) -> Void = { _ in }
    ) throws {
        session = try InotifyIntakeSession(folders: DropFolder.from(folders), settle: settle.seconds, onError: onError)
    }

    /// The candidates: first everything already present, then each file as it is finished.
    ///
    /// Call once: the stream ends when `stop()` is called or the consuming task is cancelled, and
    /// a later call returns a stream that is already finished.
    public func candidates() -> AsyncStream<IntakeCandidate> {
        let (stream, continuation) = AsyncStream.makeStream(of: IntakeCandidate.self)
        let id = UUID()
        continuation.onTermination = { [session] _ in session.requestStop(from: id) }
        session.start(continuation, id: id)
        return stream
    }

    /// Stops watching: closes the inotify descriptor and finishes the stream. Returns once the
    /// descriptor is closed (at most one rescan later). Calling it again does nothing.
    public func stop() {
        session.requestStop()
        session.waitUntilClosed()
    }

    /// Whether the inotify descriptor is closed (for tests).
    var isClosed: Bool { session.isClosed }

    /// Returns once the start-up scan has run (for tests that must not race it).
    func waitUntilStarted() { session.queue.sync {} }

    /// How many kernel queue overflows caused a full rescan (for tests).
    var rescans: Int { session.queue.sync { session.rescans } }

    /// Runs `body` while events are not read, so the kernel queue fills up (for tests).
    func withEventsPaused<T>(_ body: () async throws -> T) async rethrows -> T {
        session.queue.suspend()
        defer { session.queue.resume() }
        return try await body()
    }
}
