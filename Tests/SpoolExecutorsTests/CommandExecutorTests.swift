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
    /// The grace period between SIGTERM and SIGKILL in these tests.
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
        // Bounds on "no hang" are generous: other suites may keep the machine and pool busy.
        let result = try await fixture.runCommand(Self.shell("head -c 10 >/dev/null; echo ok"), within: .seconds(30))
        #expect(result?.0 == .succeeded)
        #expect(result?.1 == 10)
        #expect(fixture.output == Array("ok\n".utf8))
    }

    @Test func aModelMayCloseItsStdoutEarly() async throws {
        let payload = [UInt8](repeating: 0x61, count: 3 << 20)
        let fixture = try InvocationFixture(payload: payload)
        let result = try await fixture.runCommand(Self.shell("exec >&-; sleep 0.2; cat >/dev/null"), within: .seconds(30))
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

    @Test func backgroundProcessesDoNotOutliveASuccessfulModel() async throws {
        // The background sleep holds stderr open: the executor must not wait for its end of file.
        let fixture = try InvocationFixture(payload: [])
        let dir = fixture.directory
        // Waiting for the sleep to close stderr would take 100 s.
        let result = try await fixture.runCommand(Self.shell("sleep 100 & echo $! > \(dir)/bg; echo done"), within: .seconds(30))
        #expect(result?.0 == .succeeded)
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
        let result = await value(of: task, within: .seconds(30))
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
