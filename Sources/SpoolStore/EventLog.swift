import Foundation
import SpoolCore
import SpoolSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `events.jsonl`: one JSON line per finished request, appended by the process that publishes
/// it, read by `spool events` and by recovery.
///
/// Appends are one `write` of whole lines on an `O_APPEND` descriptor, so lines from several
/// processes on one host never interleave; a write cut short (a full disk) is cut off again, so
/// no torn line stays to swallow the next one; the first open repairs a torn tail a crash left.
public final class EventLog: Sendable {
    public let path: String
    private let descriptor = Mutex<Int32>(-1)

    public init(path: String) {
        self.path = path
    }

    deinit {
        descriptor.withLock { fd in if fd >= 0 { close(fd) } }
    }

    /// What the first open found and cut off: a last line without its newline.
    public struct Repair: Sendable, Equatable {
        public var bytesCut: Int
    }

    /// Appends `lines` (whole lines, each ending in a newline) in one write.
    /// - Parameter repaired: told when the first open cut off a torn tail.
    /// - Throws: `SpoolStoreError` when the log cannot be opened or written (nothing of `lines`
    ///   stays then, unless another process appended in the meantime).
    public func append(_ lines: Data, repaired: (Repair) -> Void = { _ in }) throws(SpoolStoreError) {
        guard !lines.isEmpty else { return }
        try descriptor.withLock { (fd: inout Int32) throws(SpoolStoreError) in
            if fd < 0 {
                do throws(SystemError) {
                    fd = try SystemCalls.open(path, O_RDWR | O_APPEND | O_CREAT)
                } catch {
                    throw SpoolStoreError(error)
                }
                if let repair = Self.repairTornTail(fd) { repaired(repair) }
            }
            var info = stat()
            let before = fstat(fd, &info) == 0 ? info.st_size : -1
            do throws(SystemError) {
                try SystemCalls.writeAll(fd, lines, path: path)
            } catch {
                // Whatever part of the lines made it in goes again, unless another process
                // appended since (then the tail is repaired at the next start).
                if before >= 0, fstat(fd, &info) == 0, info.st_size > before, info.st_size < before + off_t(lines.count) {
                    _ = ftruncate(fd, before)
                }
                throw SpoolStoreError(error)
            }
        }
    }

    /// Cuts off a last line without its newline (a crash or a full disk in the middle of a
    /// write), so the next event starts a line of its own.
    private static func repairTornTail(_ fd: Int32) -> Repair? {
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size > 0 else { return nil }
        let size = Int(info.st_size)
        let window = min(size, 1 << 20)
        var tail = [UInt8](repeating: 0, count: window)
        guard pread(fd, &tail, window, off_t(size - window)) == window, tail.last != 0x0A else { return nil }
        let keep = tail.lastIndex(of: 0x0A).map { size - window + $0 + 1 } ?? (window == size ? 0 : size)
        guard keep < size, ftruncate(fd, off_t(keep)) == 0 else { return nil }
        return Repair(bytesCut: size - keep)
    }

    /// Inference ids that appear in the last `bytes` of the log (recovery looks there before it
    /// publishes a request again).
    public func recentIDs(bytes: Int = 1 << 20) -> Set<String> {
        guard let handle = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? handle.close() }
        let end = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: end > UInt64(bytes) ? end - UInt64(bytes) : 0)
        guard let data = try? handle.readToEnd() else { return [] }
        var ids = Set<String>()
        let decoder = JSONDecoder()
        for line in data.split(separator: 0x0A) {
            if let event = try? decoder.decode(NotificationEvent.self, from: line) { ids.insert(event.inferenceId) }
        }
        return ids
    }

    /// The lines of the log at `path` whose event happened at or after `cutoff` (a timestamp;
    /// nil: all), then, with `follow`, each line appended later, polled every `interval` of
    /// `clock` and across rotation, as `tail -F` does (`spool events`). Ends when not following
    /// and all is read, or when the consuming task is cancelled.
    public static func lines(
        at path: String, since cutoff: String?, follow: Bool,
        clock: any Clock<Duration> = ContinuousClock(), interval: Duration = .milliseconds(100)
    ) -> AsyncStream<Data> {
        AsyncStream { continuation in
            let task = Task {
                await Self.read(path, since: cutoff, follow: follow, clock: clock, interval: interval) { continuation.yield($0) }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    private static func read<C: Clock<Duration>>(
        _ path: String, since cutoff: String?, follow: Bool, clock: C, interval: Duration, _ emit: (Data) -> Void
    ) async {
        let reader = LineFollower(path: path)
        while !Task.isCancelled {
            for line in reader.readAvailable() where EventFilter.isAtOrAfter(line, cutoff) { emit(line) }
            if !follow { return }
            do { try await clock.sleep(for: interval, tolerance: nil) } catch { return }
        }
    }
}
