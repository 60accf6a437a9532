import Foundation
import SpoolCore
import Subprocess
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One running model server: the `serve` argv started as the leader of a process group of its
/// own, with `SAGEMAKER_BIND_TO_PORT`, `SAGEMAKER_SAFE_PORT_RANGE` and the endpoint's `env` and
/// `instance_env` set, in its `workdir`; its stdout and stderr go, line by line, to its log
/// (`logs/<endpoint>.<instance>.log`), and their last 4 KiB are kept as evidence.
///
/// The group is signalled only until the leader is known to have been reaped (`exited`), so a
/// reused PID is never signalled; a server that exits by itself has the rest of its group killed.
final class ModelServerInstance: Sendable {
    let index: Int
    let port: Int
    let base: String
    private let argv: [String]
    private let environment: [String: String]
    private let workdir: String?
    private let log: ModelLog?

    private struct State {
        var pid: pid_t?
        var status: TerminationStatus?
        var reaped = false
        var stderr = StderrTail()
    }

    private let state = Mutex(State())
    /// Ends when the server has exited (or could not be started).
    private let exit = Mutex<Task<Void, Never>?>(nil)

    /// Where the server's process group is written down while it runs.
    private let processGroups: ProcessGroupRecord?

    init(index: Int, spec: ContainerSpec, workdir: String? = nil, log: ModelLog? = nil, processGroups: ProcessGroupRecord? = nil) {
        self.processGroups = processGroups
        self.index = index
        self.port = spec.port + index
        self.argv = spec.serve
        self.environment = spec.environment(instance: index)
        self.workdir = workdir
        self.log = log
        self.base = "http://127.0.0.1:\(port)"
    }

    /// Set when the pool replaced the instance because it stopped answering `GET /ping`.
    private let unhealthy = Mutex<Duration?>(nil)

    func markUnhealthy(after silence: Duration) {
        unhealthy.withLock { $0 = silence }
    }

    /// How long the instance had not answered `GET /ping` when the pool replaced it, if it did.
    var replacedAfter: Duration? { unhealthy.withLock { $0 } }

    var pid: pid_t? { state.withLock { $0.reaped ? nil : $0.pid } }
    var stderrTail: String? { state.withLock { $0.stderr.text } }

    /// Whether the server has exited (its leader is a zombie or reaped).
    var hasExited: Bool {
        state.withLock { state in
            if state.reaped { return true }
            guard let pid = state.pid else { return false }
            return ProcessGroup.leaderHasExited(pid)
        }
    }

    /// How the server ended, as evidence: exit status or signal, and its stderr tail.
    var exitEvidence: ModelEvidence {
        state.withLock { state in
            var evidence = ModelEvidence(tail: state.stderr.text)
            switch state.status {
            case .exited(let code): evidence.exitStatus = code
            case .signaled(let signal): evidence.signal = signal
            case nil:
                if let pid = state.pid, let ended = Self.peekStatus(pid) { (evidence.exitStatus, evidence.signal) = ended }
            }
            return evidence
        }
    }

    /// How long an exited server is given to be reaped before its status is read: Subprocess
    /// holds the status until its reaper thread has run, which a loaded machine can delay for
    /// seconds (and the request it served has failed already, so waiting costs nothing).
    static let reapPatience = Duration.seconds(10)

    /// Waits (at most `limit`) until the exited server has been reaped, so `exitEvidence` holds
    /// its status.
    func awaitReaped(within limit: Duration) async {
        let deadline = ContinuousClock.now + limit
        while !state.withLock({ $0.reaped }) && ContinuousClock.now < deadline {
            await ProcessGroup.pause(.milliseconds(5))
        }
    }

    /// Starts the server; returns once it is spawned (not yet ready). `onExit` runs once it has
    /// exited and been reaped.
    func launch(onExit: @escaping @Sendable (ModelServerInstance) -> Void) async throws {
        guard let program = argv.first, !program.isEmpty else {
            throw Failure(.modelError, "The model server could not be started: the serve command is empty.")
        }
        var options = PlatformOptions()
        options.processGroupID = 0
        var environment: [Environment.Key: String?] = [:]
        for (name, value) in self.environment { environment[Environment.Key(stringLiteral: name)] = value }
        let configuration = Configuration(
            executable: program.contains("/") ? .path(.init(program)) : .name(program),
            arguments: Arguments(executablePathOverride: program, remainingValues: Array(argv.dropFirst())),
            environment: .inherit.updating(environment),
            workingDirectory: workdir.map { .init($0) },
            platformOptions: options
        )
        let log = self.log
        let spawned = SpawnSignal()
        let task = Task.detached { [self] in
            do {
                let outcome = try await Subprocess.run(configuration, input: .none, output: .sequence, error: .combinedWithOutput) { execution in
                    let pid = execution.processIdentifier.value
                    state.withLock { $0.pid = pid }
                    processGroups?.started(pid)
                    defer { processGroups?.finished(pid) }
                    spawned.resume(.success(()))
                    var lines = LogLineSplitter()
                    do {
                        for try await chunk in execution.standardOutput {
                            chunk.withUnsafeBytes { bytes in
                                state.withLock { $0.stderr.append(bytes) }
                                log?.record(bytes, splitter: &lines)
                            }
                        }
                    } catch {}
                    log?.write(lines: lines.rest())
                    // The leader has exited (or closed stderr); whatever it left behind goes too.
                    await ProcessGroup.waitForLeader(pid, longest: .milliseconds(50)) {}
                    ProcessGroup.signal(pid, SIGKILL)
                }
                state.withLock {
                    $0.status = outcome.terminationStatus
                    $0.reaped = true
                }
            } catch {
                state.withLock { $0.reaped = true }
                spawned.resume(.failure(Failure(
                    .modelError, "The model server could not be started: \((error as? SubprocessError).map(CommandExecutor.describe) ?? "\(error).")",
                    retryable: false
                )))
            }
            onExit(self)
        }
        exit.withLock { $0 = task }
        try await spawned.wait()
    }

    /// Polls `GET /ping` every `interval` until it answers 200; throws a retryable `ModelError`
    /// when the server exits first or `timeout` passes.
    func waitUntilReady(client: ModelServerClient, timeout: Duration, interval: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            if hasExited {
                await awaitReaped(within: Self.reapPatience)
                let evidence = exitEvidence
                let how = evidence.signal.map { "was killed by signal \($0)" }
                    ?? evidence.exitStatus.map { "exited with status \($0)" } ?? "exited"
                throw Failure(.modelError, "The model server \(how) before it was ready.", evidence: evidence, retryable: true)
            }
            let left = deadline - .now
            if left <= .zero {
                throw Failure(
                    .modelError, "The model server did not answer GET /ping on port \(port) within \(timeout).",
                    evidence: ModelEvidence(tail: stderrTail), retryable: true
                )
            }
            if await client.ping(base, timeout: min(left, .seconds(2))) { return }
            try Task.checkCancellation()
            try await Task.sleep(for: min(interval, max(left, .milliseconds(1))))
        }
    }

    /// SIGTERM to the group, SIGKILL after `grace`; returns once the server has been reaped.
    func stop(grace: Duration) async {
        terminate(SIGTERM)
        let deadline = ContinuousClock.now + grace
        while !hasExited && ContinuousClock.now < deadline {
            await ProcessGroup.pause(.milliseconds(20))
        }
        terminate(SIGKILL)
        await exit.withLock { $0 }?.value
    }

    /// Sends `signal` to the group while its leader is not reaped.
    func terminate(_ signal: Int32) {
        state.withLock { state in
            if let pid = state.pid, !state.reaped { ProcessGroup.signal(pid, signal) }
        }
    }

    /// The exit status or signal of an exited, unreaped leader.
    private static func peekStatus(_ pid: pid_t) -> (Int32?, Int32?)? {
        var info = siginfo_t()
        guard waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0, info._sifields._sigchld.si_pid == pid else { return nil }
        let status = info._sifields._sigchld.si_status
        return info.si_code == CLD_EXITED ? (status, nil) : (nil, status)
    }
}

/// Resumes one waiter once, with the spawn's outcome.
private final class SpawnSignal: Sendable {
    private let state = Mutex<(result: Result<Void, any Error>?, waiter: CheckedContinuation<Void, any Error>?)>((nil, nil))

    func resume(_ result: Result<Void, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(with: result)
    }

    func wait() async throws {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> Result<Void, any Error>? in
                if state.result == nil { state.waiter = continuation }
                return state.result
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}
