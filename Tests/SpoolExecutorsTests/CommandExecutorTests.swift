import Foundation
import SpoolCore
import Synchronization
import Testing
@testable import SpoolExecutors

#if canImport(Glibc)
import Glibc
#endif

/// The `command` executor with real child processes (`/bin/sh -c` scripts). Every wait is bounded.
@Suite struct CommandExecutorTests {
    static let grace = Duration.milliseconds(500)

    static func shell(_ script: String) -> CommandExecutor {
        CommandExecutor(argv: ["/bin/sh", "-c", script], gracePeriod: grace, progressInterval: .milliseconds(50))
    }

    @Test func theModelSeesTheSpoolVariables() async throws {
        let fixture = try InvocationFixture(payload: Array("hello".utf8))
        let script = #"printf '%s|' "$SPOOL_INFERENCE_ID" "$SPOOL_CONTENT_TYPE" "$SPOOL_ACCEPT" "$SPOOL_CUSTOM_ATTRIBUTES" "$SPOOL_INPUT_PATH" "$SPOOL_PAYLOAD_BYTES" "${HOME+inherited}""#
        let (result, _) = try await fixture.runCommand(
            Self.shell(script), id: "req-1", contentType: "text/csv", accept: "application/json", customAttributes: "a=1; b=\"two\""
        )
        #expect(result == .succeeded)
        #expect(String(decoding: fixture.output, as: UTF8.self)
            == "req-1|text/csv|application/json|a=1; b=\"two\"|\(fixture.inputPath)|5|inherited|")
    }

    @Test func absentMetadataIsAnEmptyVariable() async throws {
        let fixture = try InvocationFixture(payload: [])
        let script = #"printf '%s|' "${SPOOL_CONTENT_TYPE-unset}" "${SPOOL_ACCEPT-unset}" "${SPOOL_CUSTOM_ATTRIBUTES-unset}" "$SPOOL_PAYLOAD_BYTES""#
        let (result, _) = try await fixture.runCommand(Self.shell(script))
        #expect(result == .succeeded)
        #expect(String(decoding: fixture.output, as: UTF8.self) == "|||0|")
    }

    @Test func aNonZeroExitIsAModelErrorWithTheLastFourKiBOfStderr() async throws {
        // 18,000 lines of 7 bytes (126,000 bytes) on stderr: more than a pipe holds, so Spool must
        // drain it while the model writes; the evidence is its last 4,096 bytes exactly.
        let fixture = try InvocationFixture(payload: Array("x".utf8))
        let (result, _) = try await fixture.runCommand(Self.shell("seq -w 100000 117999 >&2; exit 3"))
        let stderr = Array((100000...117999).map { "\($0)\n" }.joined().utf8)
        #expect(result == .failed(Failure(
            .modelError, "The model exited with status 3.",
            evidence: ModelEvidence(exitStatus: 3, tail: String(decoding: stderr.suffix(4096), as: UTF8.self)),
            retryable: true
        )))
    }

    @Test func aSignalIsInTheEvidence() async throws {
        let fixture = try InvocationFixture(payload: [])
        let (result, _) = try await fixture.runCommand(Self.shell("ulimit -c 0; echo dying >&2; kill -SEGV $$"))
        #expect(result == .failed(Failure(
            .modelError, "The model was killed by signal \(SIGSEGV) (SIGSEGV).",
            evidence: ModelEvidence(signal: SIGSEGV, tail: "dying\n"), retryable: true
        )))
    }

    @Test func aModelMayExitWithoutReadingItsInput() async throws {
        let fixture = try InvocationFixture(payload: [])
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: fixture.inputPath))
        try handle.truncate(atOffset: 50 << 20)
        try handle.close()
        let started = ContinuousClock.now
        let result = try await fixture.runCommand(Self.shell("head -c 10 >/dev/null; echo ok"), within: .seconds(10))
        #expect(result?.0 == .succeeded)
        #expect(result?.1 == 10)
        #expect(fixture.output == Array("ok\n".utf8))
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test func aModelMayCloseItsStdoutEarly() async throws {
        let payload = [UInt8](repeating: 0x61, count: 3 << 20)
        let fixture = try InvocationFixture(payload: payload)
        let result = try await fixture.runCommand(Self.shell("exec >&-; sleep 0.2; cat >/dev/null"), within: .seconds(10))
        #expect(result?.0 == .succeeded)
        #expect(result?.1 == Int64(payload.count))
        #expect(fixture.output.isEmpty)
    }

    @Test(arguments: [["/nonexistent/spool-model"], ["spool-no-such-model-anywhere"], ["/etc/hostname"]])
    func aProgramThatCannotStartIsAModelErrorNotRetried(argv: [String]) async throws {
        let fixture = try InvocationFixture(payload: Array("x".utf8))
        for _ in 0..<5 {
            let (result, _) = try await fixture.runCommand(CommandExecutor(argv: argv))
            guard case .failed(let failure) = result else {
                Issue.record("\(argv) started")
                return
            }
            #expect(failure.code == .modelError)
            #expect(failure.retryable == false)
            #expect(failure.reason.hasPrefix("The model command could not be started: "))
        }
        // The payload and output descriptors handed to Subprocess are closed when the start fails.
        #expect(descriptors(openOn: fixture.inputPath) == 0 && descriptors(openOn: fixture.outputPath) == 0)
    }

    @Test func aFileThatIsNotExecutableCannotStart() async throws {
        let fixture = try InvocationFixture(payload: Array("echo hi\n".utf8))  // mode 0644
        let (result, _) = try await fixture.runCommand(CommandExecutor(argv: [fixture.inputPath]))
        guard case .failed(let failure) = result else {
            Issue.record("a 0644 file started")
            return
        }
        #expect(failure.code == .modelError && !failure.retryable)
        #expect(failure.reason.hasPrefix("The model command could not be started: "))
    }

    // The cancellation tests time the group's death from a thread outside the cooperative pool,
    // so that other suites keeping the pool busy cannot make them flaky; `invoke` must return soon
    // after (within a looser bound).

    @Test func cancellationKillsTheWholeGroupPromptly() async throws {
        let run = try await cancelRunning { dir in "echo $$ > \(dir)/pid; sleep 100 & echo $! > \(dir)/bg; sleep 100; wait" }
        #expect(run.membersBeforeCancel == 3)
        #expect(run.result == .failed(Failure(.cancelled, "The invocation was stopped.")))
        let gone = try #require(run.groupGoneAfter)
        #expect(gone < Self.grace + .seconds(1))
    }

    @Test func aModelIgnoringSIGTERMIsKilledAfterTheGracePeriod() async throws {
        let run = try await cancelRunning { dir in "trap '' TERM; echo $$ > \(dir)/pid; sleep 100" }
        #expect(run.result == .failed(Failure(.cancelled, "The invocation was stopped.")))
        let gone = try #require(run.groupGoneAfter)
        #expect(gone >= Self.grace && gone < Self.grace + .seconds(1))
    }

    @Test func aDescendantIgnoringSIGTERMIsKilledAfterTheGracePeriod() async throws {
        // The leader dies at once on SIGTERM; its child does not, and must not survive it.
        let run = try await cancelRunning { dir in "echo $$ > \(dir)/pid; (trap '' TERM; sleep 100; :) & sleep 100" }
        #expect(run.result == .failed(Failure(.cancelled, "The invocation was stopped.")))
        let gone = try #require(run.groupGoneAfter)
        #expect(gone >= Self.grace && gone < Self.grace + .seconds(1))
    }

    @Test func aModelIsAskedToStopWithSIGTERMFirst() async throws {
        let run = try await cancelRunning { dir in "echo $$ > \(dir)/pid; trap 'echo cleaned up > \(dir)/note; exit 0' TERM; sleep 100 & wait" }
        #expect(run.result == .failed(Failure(.cancelled, "The invocation was stopped.")))
        #expect(run.note == "cleaned up\n")
        let gone = try #require(run.groupGoneAfter)
        #expect(gone < Self.grace)
    }

    /// What happened when a running model was cancelled.
    struct CancelledRun {
        /// What the script wrote to `dir/note`, if anything.
        var note: String?
        var membersBeforeCancel: Int
        var result: AttemptResult?
        /// From the cancellation until no process of the group was left running.
        var groupGoneAfter: Duration?
    }

    /// Runs the script `body(dir)` (which writes its PID to `dir/pid`), cancels it 100 ms after it
    /// started, and watches its process group.
    func cancelRunning(_ body: (String) -> String) async throws -> CancelledRun {
        let fixture = try InvocationFixture(payload: [])
        let dir = fixture.directory
        let executor = Self.shell(body(dir))
        let task = Task { try await fixture.runCommand(executor) }
        guard let pgid = await waitForPID(at: "\(dir)/pid") else {
            task.cancel()
            throw POSIXError(.ESRCH)
        }
        try await Task.sleep(for: .milliseconds(100))  // until the script's traps and children are in place
        let members = ProcessGroup.livingMembers(of: pgid).count
        let cancelled = ContinuousClock.now
        let watcher = GroupWatcher(pgid: pgid, limit: Self.grace + .seconds(10))
        task.cancel()
        let result = await value(of: task, within: Self.grace + .seconds(5))
        #expect(ContinuousClock.now - cancelled < Self.grace + .seconds(5))
        // The executor returns once the group is gone; the watcher may see it a poll later.
        let gone = await watcher.goneAt(within: .seconds(2))
        #expect(ProcessGroup.livingMembers(of: pgid).isEmpty)
        let note = try? String(contentsOfFile: "\(dir)/note", encoding: .utf8)
        return CancelledRun(note: note, membersBeforeCancel: members, result: result?.0, groupGoneAfter: gone.map { $0 - cancelled })
    }

    @Test func backgroundProcessesDoNotOutliveASuccessfulModel() async throws {
        // The background sleep holds stderr open: the executor must not wait for its end of file.
        let fixture = try InvocationFixture(payload: [])
        let dir = fixture.directory
        let started = ContinuousClock.now
        let result = try await fixture.runCommand(Self.shell("sleep 100 & echo $! > \(dir)/bg; echo done"), within: .seconds(10))
        #expect(result?.0 == .succeeded)
        #expect(ContinuousClock.now - started < .seconds(8))  // the sleep would hold stderr for 100 s
        #expect(fixture.output == Array("done\n".utf8))
        let background = try #require(await waitForPID(at: "\(dir)/bg"))
        // It was sent SIGKILL before the executor returned; delivery is asynchronous.
        #expect(await waitUntilGone(background, within: .seconds(2)))
    }

    @Test func progressIsHowFarTheModelHasReadWhileItRuns() async throws {
        // The model reads half its payload and waits for the test to see that much progress.
        let payload = [UInt8](repeating: 0x62, count: 1 << 20)
        let fixture = try InvocationFixture(payload: payload)
        let dir = fixture.directory
        let seen = ProgressLog()
        let executor = Self.shell("head -c 524288 >/dev/null; while [ ! -e \(dir)/go ]; do sleep 0.01; done; cat >/dev/null")
        let task = Task { try await fixture.runCommand(executor, progress: seen) }
        var halfway = false
        for _ in 0..<1000 where !halfway {
            try await Task.sleep(for: .milliseconds(10))
            halfway = seen.values.last == 524288
        }
        #expect(halfway, "progress never showed the half read: \(seen.values.suffix(5))")
        FileManager.default.createFile(atPath: "\(dir)/go", contents: nil)
        let result = await value(of: task, within: .seconds(10))
        #expect(result?.0 == .succeeded)
        #expect(result?.1 == Int64(payload.count))
        #expect(seen.values == seen.values.sorted())
    }

    @Test func theFactoryBuildsCommandExecutors() throws {
        let executor = try ExecutorFactory.make(for: EndpointConfig(name: "default", model: .command(["cat", "-u"])))
        #expect((executor as? CommandExecutor)?.argv == ["cat", "-u"])
        #expect(throws: ExecutorError.self) { try ExecutorFactory.make(for: EndpointConfig(name: "e", model: .command([]))) }
    }
}

@Suite struct StderrTailTests {
    @Test(arguments: [1, 7, 4095, 4096, 4097, 10_000])
    func keepsTheLastBytesWhateverTheChunks(chunk: Int) {
        let stream = pseudoRandomBytes(count: 50_000, seed: UInt64(chunk))
        var tail = StderrTail()
        var offset = 0
        var size = chunk
        while offset < stream.count {
            let end = min(stream.count, offset + size)
            tail.append(Array(stream[offset..<end]))
            #expect(tail.bytes == Array(stream[..<end].suffix(4096)))
            offset = end
            size = size % 5000 + chunk  // vary the chunk sizes
        }
        #expect(tail.totalBytes == 50_000)
    }

    @Test func emptyHasNoText() {
        var tail = StderrTail()
        #expect(tail.text == nil)
        tail.append(Array("oops\n".utf8))
        #expect(tail.text == "oops\n")
    }
}

// MARK: - Helpers

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

/// Whether `pid` is a process that is not a zombie.
func isRunning(_ pid: pid_t) -> Bool {
    guard let status = ProcessGroup.status(of: pid) else { return false }
    return status.state != "Z" && status.state != "X"
}

/// Watches a process group from a thread of its own (not the cooperative pool) and notes when
/// no process of it is left running.
final class GroupWatcher: Sendable {
    private let gone = Mutex<ContinuousClock.Instant?>(nil)

    init(pgid: pid_t, limit: Duration) {
        DispatchQueue.global().async { [self] in
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
