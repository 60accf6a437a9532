import Foundation
import SpoolCore
import Subprocess

#if canImport(Glibc)
import Glibc
#endif

/// A model that is a program: one process per request, started from `argv` without a shell
/// (payload on stdin, output from stdout, exit 0 succeeds).
///
/// - The payload is the process's stdin and the output file its stdout: both are the daemon's
///   own descriptors handed to the child (duplicated), so the kernel moves the bytes and nothing
///   passes through Spool; memory is constant and back-pressure is the file system's. A model
///   may stop reading early, or close its stdout, without anyone waiting on it.
/// - stderr is a pipe Spool drains as the model writes, keeping only the last
///   `ModelEvidence.tailBytes` for the failure marker.
/// - Progress is how far the model has read its stdin: the child's descriptor shares the file
///   offset of `Invocation.input`, which is sampled every `progressInterval`. (A model that
///   reads its payload by path, or with `pread`/`mmap`, shows no progress.)
/// - The environment is the daemon's plus `SPOOL_INFERENCE_ID`, `SPOOL_CONTENT_TYPE`,
///   `SPOOL_ACCEPT`, `SPOOL_CUSTOM_ATTRIBUTES` (empty when the request has none),
///   `SPOOL_INPUT_PATH` and `SPOOL_PAYLOAD_BYTES`; the working directory is the daemon's.
/// - Exit 0 succeeds. Another status, or death by a signal, is a retryable `ModelError` with
///   the status or signal and the stderr tail; a program that cannot be started is a
///   `ModelError` that is not retryable (unless the system was out of processes or memory).
/// - The model leads a process group of its own. When the task is cancelled (timeout, cancel,
///   shutdown) the group gets SIGTERM, and SIGKILL after `gracePeriod`; the result is then
///   `Cancelled`. Whatever is left of the group when the model exits by itself is killed too:
///   a background process must not keep writing into an output that is being published.
public struct CommandExecutor: ModelExecutor {
    /// The program and its arguments; `argv[0]` is looked up in `PATH` unless it holds a `/`.
    public let argv: [String]
    /// How long the process group has between SIGTERM and SIGKILL.
    public let gracePeriod: Duration
    /// How often progress is sampled while the model runs.
    public let progressInterval: Duration

    public static let defaultGracePeriod = Duration.seconds(5)

    /// Where the model's process group is written down while it runs (see `ProcessGroupRecord`).
    let processGroups: ProcessGroupRecord?
    /// Where the model's stderr lines go, each tagged with the InferenceId (`logs/<endpoint>.log`).
    let log: ModelLog?

    public init(
        argv: [String], gracePeriod: Duration = defaultGracePeriod, progressInterval: Duration = .milliseconds(200),
        processGroups: ProcessGroupRecord? = nil, log: ModelLog? = nil
    ) {
        self.argv = argv
        self.processGroups = processGroups
        self.log = log
        self.gracePeriod = gracePeriod
        self.progressInterval = progressInterval
    }

    /// Writes out the log lines still queued.
    public func shutdown() async {
        log?.flush()
    }

    public func invoke(_ invocation: Invocation) async -> AttemptResult {
        guard let program = argv.first, !program.isEmpty else {
            return .failed(Failure(.modelError, "The model command could not be started: the command is empty."))
        }
        if Task.isCancelled { return .failed(Self.stopped) }
        // Close-on-exec copies, so no other child started meanwhile inherits them; Subprocess
        // installs them as the model's 0 and 1 and closes them after spawning (or failing to).
        let stdin = fcntl(invocation.input, F_DUPFD_CLOEXEC, 3)
        guard stdin >= 0 else {
            return .failed(Failure(.inputUnreadable, "The payload could not be handed to the model: \(String(cString: strerror(errno)))."))
        }
        let stdout = fcntl(invocation.output, F_DUPFD_CLOEXEC, 3)
        guard stdout >= 0 else {
            let message = String(cString: strerror(errno))
            close(stdin)
            return .failed(Failure(.outputWriteFailed, "The output could not be handed to the model: \(message)."))
        }

        var options = PlatformOptions()
        options.processGroupID = 0
        // `ProcessGroup.Teardown` signals the group on cancellation. Subprocess's own teardown
        // (which would otherwise SIGKILL the leader alone at once) only probes the group with
        // signal 0, and kills it should the leader somehow outlive the grace period by a second.
        options.teardownSequence = [
            .send(signal: Signal(rawValue: 0), toProcessGroup: true, allowedDurationToNextStep: gracePeriod + .seconds(1))
        ]
        let configuration = Configuration(
            executable: program.contains("/") ? .path(.init(program)) : .name(program),
            arguments: Arguments(executablePathOverride: program, remainingValues: Array(argv.dropFirst())),
            environment: .inherit.updating(Self.environment(for: invocation)),
            platformOptions: options
        )

        let teardown = ProcessGroup.Teardown(gracePeriod: gracePeriod)
        let outcome: ExecutionResult<[UInt8], FileDescriptorOutput, SequenceOutput>
        do {
            outcome = try await withTaskCancellationHandler {
                try await Subprocess.run(
                    configuration,
                    input: .fileDescriptor(.init(rawValue: stdin), closeAfterSpawningProcess: true),
                    output: .fileDescriptor(.init(rawValue: stdout), closeAfterSpawningProcess: true),
                    error: .sequence
                ) { execution in
                    await supervise(execution, invocation: invocation, teardown: teardown)
                }
            } onCancel: {
                teardown.cancel()
            }
        } catch let error as SubprocessError {
            switch error.code {
            case .executableNotFound, .spawnFailed, .failedToChangeWorkingDirectory:
                // A missing or unrunnable program stays so; running out of processes or memory may not.
                let transient = [EAGAIN, ENOMEM, EMFILE, ENFILE, EINTR].contains(error.underlyingError?.rawValue ?? 0)
                return .failed(Failure(
                    .modelError, "The model command could not be started: \(Self.describe(error))", retryable: transient
                ))
            default:
                return .failed(Failure(.modelError, "The model command failed to run: \(Self.describe(error))", retryable: true))
            }
        } catch {
            return .failed(Failure(.modelError, "The model command failed to run: \(error).", retryable: true))
        }

        if Task.isCancelled || teardown.deadline != nil { return .failed(Self.stopped) }
        let tail = outcome.closureResult.isEmpty ? nil : ModelEvidence.tail(of: outcome.closureResult)
        switch outcome.terminationStatus {
        case .exited(0):
            return .succeeded
        case .exited(let status):
            return .failed(Failure(
                .modelError, "The model exited with status \(status).",
                evidence: ModelEvidence(exitStatus: status, tail: tail), retryable: true
            ))
        case .signaled(let signal):
            return .failed(Failure(
                .modelError, "The model was killed by signal \(signal)\(Self.signalName(signal).map { " (\($0))" } ?? "").",
                evidence: ModelEvidence(signal: signal, tail: tail), retryable: true
            ))
        }
    }

    /// Runs while the model does: drains stderr into the tail and samples progress until the
    /// model has exited, then finishes its process group (after the grace period when the task
    /// was cancelled). Returns the stderr tail.
    private func supervise(
        _ execution: Execution<FileDescriptorInput, FileDescriptorOutput, SequenceOutput>,
        invocation: Invocation, teardown: ProcessGroup.Teardown
    ) async -> [UInt8] {
        let pid = execution.processIdentifier.value
        teardown.started(pid)
        processGroups?.started(pid)
        defer {
            teardown.finished()
            processGroups?.finished(pid)
        }
        let input = invocation.input
        let progress = invocation.progress
        let interval = progressInterval
        let report = { @Sendable in
            let offset = lseek(input, 0, SEEK_CUR)
            if offset >= 0 { progress(Int64(offset)) }
        }
        var tail = StderrTail()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    report()
                    try? await Task.sleep(for: interval)
                }
            }
            // Ends at end of file, when Subprocess sees the model exit (a background process may
            // hold the pipe open), or when the task is cancelled.
            do {
                var lines = LogLineSplitter()
                for try await buffer in execution.standardError {
                    buffer.withUnsafeBytes { bytes in
                        tail.append(bytes)
                        log?.record(bytes, splitter: &lines, tag: invocation.request.id)
                    }
                    if Task.isCancelled { break }
                }
                log?.write(lines: lines.rest(), tag: invocation.request.id)
            } catch {
                // A failed read of stderr loses evidence, not the request.
            }
            group.cancelAll()
        }
        // The model may have closed stderr and still be running; when the task is cancelled,
        // `teardown` is killing it.
        await ProcessGroup.waitForLeader(pid, longest: interval, tick: report)
        report()
        await ProcessGroup.finish(pid, gracefullyUntil: teardown.deadline)
        return tail.bytes
    }

    static let stopped = Failure(.cancelled, "The invocation was stopped.")

    /// The `SPOOL_*` variables a model sees.
    static func environment(for invocation: Invocation) -> [Environment.Key: String?] {
        let request = invocation.request
        return [
            "SPOOL_INFERENCE_ID": request.id,
            "SPOOL_CONTENT_TYPE": request.contentType ?? "",
            "SPOOL_ACCEPT": request.accept ?? "",
            "SPOOL_CUSTOM_ATTRIBUTES": request.customAttributes ?? "",
            "SPOOL_INPUT_PATH": invocation.inputPath,
            "SPOOL_PAYLOAD_BYTES": String(request.payloadBytes),
        ]
    }

    /// Subprocess's message, with the system's reason when it does not already say it.
    static func describe(_ error: SubprocessError) -> String {
        var text = error.description
        while text.hasSuffix(".") { text.removeLast() }
        if let errno = error.underlyingError?.rawValue {
            let reason = String(cString: strerror(errno))
            if !text.contains(reason) { text += " (\(reason))" }
            if errno == ENOEXEC { text += "; a script needs a #! line" }
        }
        return text + "."
    }

    /// The conventional name of a signal, such as `SIGSEGV`.
    static func signalName(_ signal: Int32) -> String? {
        let names: [Int32: String] = [
            SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
            SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGUSR1: "SIGUSR1",
            SIGSEGV: "SIGSEGV", SIGUSR2: "SIGUSR2", SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM",
            SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ", SIGSYS: "SIGSYS",
        ]
        return names[signal]
    }
}
