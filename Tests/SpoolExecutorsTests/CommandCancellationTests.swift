import Foundation
import SpoolCore
import SpoolTestSupport
import Synchronization
import Testing
@testable import SpoolExecutors

#if canImport(Glibc)
import Glibc
#endif

/// Cancelling a running command model (timeout, `spool cancel`, shutdown): SIGTERM to the whole
/// process group, SIGKILL after the grace period, nothing left running.
///
/// The group's death is timed from a thread outside the cooperative pool, so that other suites
/// keeping the pool busy cannot make these tests flaky; `invoke` must return soon after (within
/// a much looser bound).
@Suite struct CommandCancellationTests {
    @Test func cancellationKillsTheWholeGroupPromptly() async throws {
        let run = try await cancelRunning { dir in "sleep 100 & sleep 100 & echo $$ > \(dir)/pid; wait" }
        #expect(run.membersBeforeCancel == 3)
        #expect(run.result == .failed(Failure(.cancelled, "The invocation was stopped.")))
        let gone = try #require(run.groupGoneAfter)
        #expect(gone < CommandExecutorTests.grace + .seconds(1))
    }

    @Test func aModelIgnoringSIGTERMIsKilledAfterTheGracePeriod() async throws {
        let run = try await cancelRunning { dir in "trap '' TERM; echo $$ > \(dir)/pid; sleep 100" }
        #expect(run.result == .failed(Failure(.cancelled, "The invocation was stopped.")))
        let gone = try #require(run.groupGoneAfter)
        #expect(gone >= CommandExecutorTests.grace && gone < CommandExecutorTests.grace + .seconds(1))
    }

    @Test func aDescendantIgnoringSIGTERMIsKilledAfterTheGracePeriod() async throws {
        // The leader dies at once on SIGTERM; its child does not, and must not survive it.
        let run = try await cancelRunning { dir in "(trap '' TERM; echo $$ > \(dir)/pid; sleep 100; :) & sleep 100" }
        #expect(run.result == .failed(Failure(.cancelled, "The invocation was stopped.")))
        let gone = try #require(run.groupGoneAfter)
        #expect(gone >= CommandExecutorTests.grace && gone < CommandExecutorTests.grace + .seconds(1))
    }

    @Test func aModelIsAskedToStopWithSIGTERMFirst() async throws {
        // Cancelled only once `sleep` runs: a shell's child hit by SIGTERM between fork and exec
        // would run the parent's trap handler, lose the signal, and live until SIGKILL.
        let run = try await cancelRunning(sleepers: 1) { dir in
            "trap 'echo cleaned up > \(dir)/note; exit 0' TERM; sleep 100 & echo $$ > \(dir)/pid; wait"
        }
        #expect(run.result == .failed(Failure(.cancelled, "The invocation was stopped.")))
        #expect(run.note == "cleaned up\n")
        let gone = try #require(run.groupGoneAfter)
        #expect(gone < CommandExecutorTests.grace)
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

    /// Runs the script `body(dir)`, which writes the group's ID (`$$`, also in a subshell) to
    /// `dir/pid` once its traps and children are in place, cancels it once `sleepers` processes
    /// of the group run `sleep` and the executor supervises it, and watches the group.
    func cancelRunning(sleepers: Int = 0, _ body: (String) -> String) async throws -> CancelledRun {
        let fixture = try InvocationFixture(payload: [])
        let dir = fixture.directory
        let executor = CommandExecutorTests.shell(body(dir))
        let progress = ProgressLog()
        let task = Task { try await fixture.runCommand(executor, progress: progress) }
        guard let pgid = await waitForPID(at: "\(dir)/pid") else {
            task.cancel()
            throw POSIXError(.ESRCH)
        }
        // Scanning /proc (unoptimised test build) in a loop: on a thread of its own.
        await onThreadOfItsOwn {
            for _ in 0..<500 where commands(inGroup: pgid).filter({ $0 == "sleep" }).count < sleepers { usleep(10_000) }
        }
        // The first progress report says the executor knows the model's PID. (On a loaded
        // machine the hop from spawning to supervising can take seconds; a cancellation within
        // it signals the group only when supervision starts.)
        for _ in 0..<1000 where progress.values.isEmpty {
            try await Task.sleep(for: .milliseconds(10))
        }
        let members = ProcessGroup.livingMembers(of: pgid).count
        let cancelled = ContinuousClock.now
        let watcher = GroupWatcher(pgid: pgid, limit: CommandExecutorTests.grace + .seconds(20))
        task.cancel()
        // Without the group kill the sleeps would live 100 s; the bound allows for a busy machine.
        let result = await value(of: task, within: CommandExecutorTests.grace + .seconds(20))
        // The executor returns once the group is gone; the watcher may see it a poll later.
        let gone = await watcher.goneAt(within: .seconds(2))
        #expect(ProcessGroup.livingMembers(of: pgid).isEmpty)
        let note = try? String(contentsOfFile: "\(dir)/note", encoding: .utf8)
        return CancelledRun(note: note, membersBeforeCancel: members, result: result?.0, groupGoneAfter: gone.map { $0 - cancelled })
    }
}
