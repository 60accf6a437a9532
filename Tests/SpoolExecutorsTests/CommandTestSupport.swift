import Foundation
import SpoolCore
import Synchronization
import Testing
@testable import SpoolExecutors

#if canImport(Glibc)
import Glibc
#endif

// Helpers for the command executor's tests: invocations with metadata, bounded waits, and
// looking at processes through /proc.

/// Every progress report, in order.
final class ProgressLog: Sendable {
    private let log = Mutex<[Int64]>([])
    func record(_ bytes: Int64) { log.withLock { $0.append(bytes) } }
    var values: [Int64] { log.withLock { $0 } }
}

extension InvocationFixture {
    /// Runs `executor` as `run(_:)` does, with request metadata set.
    func runCommand(
        _ executor: any ModelExecutor, id: String = "test-request", contentType: String? = nil, accept: String? = nil,
        customAttributes: String? = nil, progress: ProgressLog = ProgressLog()
    ) async throws -> (AttemptResult, Int64) {
        let (invocation, closeAll) = try prepare(
            id: id, contentType: contentType, accept: accept, customAttributes: customAttributes, progress: progress
        )
        defer { closeAll() }
        let result = await executor.invoke(invocation)
        return (result, progress.values.last ?? 0)
    }

    /// `runCommand` bounded by `limit`: nil (and a recorded issue) if it takes longer.
    func runCommand(_ executor: any ModelExecutor, progress: ProgressLog = ProgressLog(), within limit: Duration) async throws -> (AttemptResult, Int64)? {
        let (invocation, closeAll) = try prepare(progress: progress)
        let task = Task { (await executor.invoke(invocation), progress.values.last ?? 0) }
        guard let result = await value(of: task, within: limit) else { return nil }  // descriptors left open
        closeAll()
        return result
    }

    /// An invocation on the fixture's files, as the daemon builds it, and how to close its descriptors.
    private func prepare(
        id: String = "test-request", contentType: String? = nil, accept: String? = nil, customAttributes: String? = nil,
        progress: ProgressLog
    ) throws -> (Invocation, () -> Void) {
        let input = open(inputPath, O_RDONLY | O_CLOEXEC)
        let output = open(outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        #expect(input >= 0 && output >= 0)
        let size = (try FileManager.default.attributesOfItem(atPath: inputPath)[.size] as? Int64) ?? 0
        let request = InferenceRequest(
            id: id, endpoint: "default", source: .invoke, inputPath: "payload", claimToken: "t", payloadBytes: size,
            contentType: contentType, accept: accept, customAttributes: customAttributes, ttlSeconds: 60,
            timeoutSeconds: 30, maxAttempts: 1, receivedAt: Date(),
            outputLocation: "outputs/payload.out", failureLocation: "errors/payload.error.json"
        )
        let invocation = Invocation(
            request: request, inputPath: inputPath, input: input, output: output, chunkBytes: 64 * 1024,
            progress: { progress.record($0) }
        )
        return (invocation, {
            close(input)
            close(output)
        })
    }
}

/// Resumes a continuation once, from whichever caller comes first.
private final class Once<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T, Never>?>

    init(_ continuation: CheckedContinuation<T, Never>) { self.continuation = Mutex(continuation) }

    func resume(returning value: T) { continuation.withLock { $0.take() }?.resume(returning: value) }
}

/// The task's value, or nil (recording an issue) when it has not finished within `limit`; a
/// hung executor fails its test instead of hanging the suite.
func value<T: Sendable>(of task: Task<T, any Error>, within limit: Duration) async -> T? {
    await value(of: Task { try? await task.value }, within: limit) ?? nil
}

func value<T: Sendable>(of task: Task<T, Never>, within limit: Duration) async -> T? {
    let result: T? = await withCheckedContinuation { continuation in
        let once = Once<T?>(continuation)
        Task { once.resume(returning: await task.value) }
        Task {
            try? await Task.sleep(for: limit)
            once.resume(returning: nil)
        }
    }
    if result == nil { Issue.record("did not finish within \(limit)") }
    return result
}

/// Polls for a file holding a PID (written by a test script), for up to 5 s.
func waitForPID(at path: String) async -> pid_t? {
    for _ in 0..<500 {
        if let text = try? String(contentsOfFile: path, encoding: .utf8), text.hasSuffix("\n"),
            let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            return pid
        }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return nil
}

/// The command names (`/proc/<pid>/comm`) of the running processes of group `pgid`.
func commands(inGroup pgid: pid_t) -> [String] {
    ProcessGroup.livingMembers(of: pgid).compactMap { pid in
        (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .newlines)
    }
}

/// Whether `pid` is a process that is not a zombie.
func isRunning(_ pid: pid_t) -> Bool {
    guard let status = ProcessGroup.status(of: pid) else { return false }
    return status.state != "Z" && status.state != "X"
}

/// Watches a process group from a thread of its own (neither the cooperative pool nor
/// Dispatch's global pool, which blocking work can fill) and notes when no process of it is
/// left running.
final class GroupWatcher: Sendable {
    private let gone = Mutex<ContinuousClock.Instant?>(nil)

    init(pgid: pid_t, limit: Duration) {
        Thread.detachNewThread { [self] in
            let deadline = ContinuousClock.now + limit
            while ContinuousClock.now < deadline {
                if ProcessGroup.livingMembers(of: pgid).isEmpty {
                    gone.withLock { $0 = .now }
                    return
                }
                usleep(2000)
            }
        }
    }

    /// When the group was seen gone, waiting up to `limit` for it.
    func goneAt(within limit: Duration) async -> ContinuousClock.Instant? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let instant = gone.withLock({ $0 }) { return instant }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return gone.withLock { $0 }
    }
}

/// Whether `pid` stops running (exits or becomes a zombie) within `limit`.
func waitUntilGone(_ pid: pid_t, within limit: Duration) async -> Bool {
    let deadline = ContinuousClock.now + limit
    while isRunning(pid) {
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return true
}

/// How many of this process's descriptors are open on the file at `path`.
func descriptors(openOn path: String) -> Int {
    let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return fds.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")) == path }.count
}
