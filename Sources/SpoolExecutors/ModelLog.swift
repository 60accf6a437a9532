import Dispatch
import Foundation
import SpoolCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One model log under the root's `logs/` folder: `<endpoint>.<instance>.log` for a model
/// server's stdout and stderr, `<endpoint>.log` for command models' stderr. Each line is written
/// with the time it was read (`2026-11-30T11:45:42.123Z text`), and, for command models, the
/// InferenceId it belongs to.
///
/// Logging never holds up a model: lines are queued for a writer of their own, at most
/// `queueLimit` bytes, and at most `bytesPerSecond` on average (bursts of four seconds' worth);
/// when the model writes faster, or the disk is slow or full, what does not fit is dropped
/// without being read, and a line saying how much was lost is written once the writer catches
/// up. Files rotate at `maxBytes` (`.log` → `.log.1` → `.log.2`; `kept` files in all).
public final class ModelLog: Sendable {
    public static let directory = SpoolLayout.logsDirectory
    public static let maxBytes = 10 * 1024 * 1024
    public static let kept = 3
    /// Longer lines are cut (and the rest written as lines of their own).
    public static let lineLimit = 16 * 1024

    public let path: String
    private let maxBytes: Int
    private let kept: Int
    private let queueLimit: Int
    private let bytesPerSecond: Double
    private let queue: DispatchQueue

    private struct State {
        var fd: Int32 = -1
        var queued = 0
        var dropped = 0
        /// The rate limit's bucket: bytes that may be logged now, refilled over time.
        var tokens: Double
        var refilled = ContinuousClock.now
        /// A write of the "not logged" line is pending.
        var noteScheduled = false
    }

    private let state: Mutex<State>

    public init(
        path: String, maxBytes: Int = ModelLog.maxBytes, kept: Int = ModelLog.kept, queueLimit: Int = 1024 * 1024,
        bytesPerSecond: Int = 1024 * 1024
    ) {
        self.path = path
        self.maxBytes = maxBytes
        self.kept = max(1, kept)
        self.queueLimit = queueLimit
        self.bytesPerSecond = Double(bytesPerSecond)
        state = Mutex(State(tokens: Double(bytesPerSecond) * 4))
        queue = DispatchQueue(label: "spool.log")
    }

    deinit {
        let fd = state.withLock { $0.fd }
        if fd >= 0 { close(fd) }
    }

    /// The log file of an endpoint's instance (`nil`: of its command models).
    public static func path(directory: String, endpoint: String, instance: Int?) -> String {
        instance.map { "\(directory)/\(endpoint).\($0).log" } ?? "\(directory)/\(endpoint).log"
    }

    /// Logs a chunk of a model's output: its complete lines are queued, stamped with the time
    /// and `tag` (the rest waits in `splitter` for the next chunk). A chunk past the rate limit
    /// or the queue's room is only counted as dropped, without being read: a model that floods
    /// its output costs next to nothing.
    public func record(_ bytes: UnsafeRawBufferPointer, splitter: inout LogLineSplitter, tag: String? = nil) {
        guard admit(bytes.count) else {
            splitter.discardPartial()
            return
        }
        let formatted = splitter.format(bytes, prefix: Self.prefix(tag))
        // What the stamps add is charged too: the limit is on what reaches the disk.
        if formatted.count > bytes.count {
            let extra = Double(formatted.count - bytes.count)
            state.withLock { $0.tokens -= extra }
        }
        enqueue(formatted)
    }

    /// Queues whole lines (without their newlines), each stamped with the time and `tag`.
    public func write(lines: [Substring], tag: String? = nil) {
        guard !lines.isEmpty else { return }
        let prefix = Self.prefix(tag)
        var bytes: [UInt8] = []
        for line in lines {
            bytes += prefix
            bytes += Array(line.utf8)
            bytes.append(UInt8(ascii: "\n"))
        }
        guard admit(bytes.count) else { return }
        enqueue(bytes)
    }

    private static func prefix(_ tag: String?) -> [UInt8] {
        Array((Timestamp.string(Date()) + (tag.map { " [\($0)]" } ?? "") + " ").utf8)
    }

    /// Whether `count` more bytes fit the rate limit and the queue; if not, they count as dropped
    /// (and a line saying so is written a second later, should nothing else be logged by then).
    private func admit(_ count: Int) -> Bool {
        let (admitted, scheduleNote) = state.withLock { state -> (Bool, Bool) in
            let now = ContinuousClock.now
            let elapsed = now - state.refilled
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            state.tokens = min(bytesPerSecond * 4, state.tokens + seconds * bytesPerSecond)
            state.refilled = now
            guard state.queued < queueLimit, state.tokens >= Double(count) else {
                state.dropped += count
                defer { state.noteScheduled = true }
                return (false, !state.noteScheduled)
            }
            state.tokens -= Double(count)
            return (true, false)
        }
        if scheduleNote {
            queue.asyncAfter(deadline: .now() + 1) { [self] in
                state.withLock { $0.noteScheduled = false }
                self.append([])
            }
        }
        return admitted
    }

    private func enqueue(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        state.withLock { $0.queued += bytes.count }
        queue.async { [self] in self.append(bytes) }
    }

    /// The current log files of `endpoint` in `directory`: its command models', then each
    /// instance's, by instance.
    public static func files(directory: String, endpoint: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let prefix = "\(endpoint)."
        var files: [(Int, String)] = []
        for name in names where name.hasPrefix(prefix) && name.hasSuffix(".log") {
            let middle = name.dropFirst(prefix.count).dropLast(4)
            if name == "\(endpoint).log" {
                files.append((-1, name))
            } else if let instance = Int(middle), instance >= 0, String(instance) == middle {
                files.append((instance, name))
            }
        }
        return files.sorted { $0.0 < $1.0 }.map { "\(directory)/\($0.1)" }
    }

    /// Waits until every queued line has been written (tests, and a stopping daemon).
    public func flush() {
        queue.sync {}
    }

    /// On the writer's queue: writes `bytes`, reporting what was dropped first, rotating as needed.
    private func append(_ bytes: [UInt8]) {
        let dropped = state.withLock { state -> Int in
            state.queued -= bytes.count
            defer { state.dropped = 0 }
            return state.dropped
        }
        if dropped > 0 {
            let note = "\(Timestamp.string(Date())) [spool] \(dropped) bytes of output were not logged (more than the log takes, or the disk could not keep up)\n"
            if !store(Array(note.utf8)) { restoreDropped(dropped) }
        }
        if !bytes.isEmpty, !store(bytes) { restoreDropped(bytes.count) }
    }

    private func restoreDropped(_ count: Int) {
        state.withLock { $0.dropped += count }
    }

    /// Writes to the current file; false when it could not (the bytes are then counted as dropped).
    /// Several processes may log to one file (a daemon and a `drain` on one root): the file is
    /// reopened when another rotated it, and rotation happens under an exclusive lock, after
    /// checking that nobody rotated it meanwhile.
    private func store(_ bytes: [UInt8]) -> Bool {
        var fd = state.withLock { $0.fd }
        if fd >= 0, !Self.isCurrent(fd, path: path) {
            close(fd)
            fd = -1
        }
        if fd < 0 {
            fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o640)
            if fd < 0, errno == ENOENT {
                mkdir((path as NSString).deletingLastPathComponent, 0o755)
                fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o640)
            }
            state.withLock { $0.fd = fd }
            guard fd >= 0 else { return false }
        }
        var info = stat()
        if fstat(fd, &info) == 0, Int(info.st_size) > 0, Int(info.st_size) + bytes.count > maxBytes {
            flock(fd, LOCK_EX)
            // Rotated by another process while this one waited: write to the new file instead.
            if Self.isCurrent(fd, path: path) { rotate() }
            flock(fd, LOCK_UN)
            close(fd)
            fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o640)
            state.withLock { $0.fd = fd }
            guard fd >= 0 else { return false }
        }
        var written = 0
        return bytes.withUnsafeBytes { buffer -> Bool in
            while written < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + written, buffer.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                written += n
            }
            return true
        }
    }

    /// Whether `fd` is still the file at `path` (not rotated away).
    private static func isCurrent(_ fd: Int32, path: String) -> Bool {
        var open = stat()
        var named = stat()
        return fstat(fd, &open) == 0 && stat(path, &named) == 0 && open.st_ino == named.st_ino && open.st_dev == named.st_dev
    }

    /// `.log.(kept-2)` → `.log.(kept-1)`, …, `.log` → `.log.1`; the oldest is removed.
    private func rotate() {
        guard kept > 1 else {
            unlink(path)
            return
        }
        unlink("\(path).\(kept - 1)")
        for index in stride(from: kept - 2, through: 1, by: -1) {
            rename("\(path).\(index)", "\(path).\(index + 1)")
        }
        rename(path, "\(path).1")
    }
}

/// Cuts a stream of output into lines for a `ModelLog`, keeping at most `ModelLog.lineLimit`
/// bytes of an unfinished line.
public struct LogLineSplitter: Sendable {
    private var partial: [UInt8] = []

    public init() {}

    /// The complete lines in `bytes` (with what came before), each after `prefix` and ending
    /// in a newline, as bytes to write.
    public mutating func format(_ bytes: UnsafeRawBufferPointer, prefix: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var start = 0
        while start < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[start...])
            let room = ModelLog.lineLimit - partial.count
            let newline = memchr(rest.baseAddress!, Int32(UInt8(ascii: "\n")), min(rest.count, room))
            let length: Int
            if let newline {
                length = rest.baseAddress!.distance(to: UnsafeRawPointer(newline))
            } else if rest.count >= room {
                length = room  // a line longer than the limit: cut, and go on
            } else {
                partial.append(contentsOf: rest)
                break
            }
            if out.isEmpty { out.reserveCapacity(bytes.count + prefix.count * 8) }
            out += prefix
            out += partial
            partial.removeAll(keepingCapacity: true)
            var line = UnsafeRawBufferPointer(rebasing: rest[..<length])
            if line.last == UInt8(ascii: "\r") { line = UnsafeRawBufferPointer(rebasing: line.dropLast()) }
            out.append(contentsOf: line)
            out.append(UInt8(ascii: "\n"))
            start += newline == nil ? length : length + 1
        }
        return out
    }

    /// Forgets an unfinished line (its chunk was dropped).
    public mutating func discardPartial() {
        partial.removeAll(keepingCapacity: true)
    }

    /// What is left of an unfinished line, once the stream has ended.
    public mutating func rest() -> [Substring] {
        defer { partial.removeAll() }
        return partial.isEmpty ? [] : [Self.text(partial)]
    }

    private static func text(_ bytes: [UInt8]) -> Substring {
        var line = String(decoding: bytes, as: UTF8.self)
        if line.hasSuffix("\r") { line.removeLast() }
        return Substring(line)
    }
}
