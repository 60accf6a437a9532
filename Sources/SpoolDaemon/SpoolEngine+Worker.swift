import CSpoolSystem
import Foundation
import Logging
import SpoolCore
import SpoolStore
import Synchronization

#if canImport(Glibc)
import Glibc
import SpoolSystem
#endif

extension SpoolEngine {
    /// How often an idle worker looks at the ledger for requests queued by other processes.
    static let idlePoll = Duration.milliseconds(250)
    /// How often a running request's progress is written to the ledger (and cancellation noticed).
    static let progressInterval = Duration.milliseconds(500)
    /// How often a running request's output is handed to writeback.
    static let writebackInterval = Duration.milliseconds(50)

    /// One worker: claims the oldest queued request of `endpoint` and runs it, until cancelled,
    /// until `stopping()` says so, or (with `untilIdle`) until the queue is empty.
    /// Returns once the attempts it finished are committed.
    public func runWorker(endpoint name: String, untilIdle: Bool = false, stopping: @Sendable () -> Bool = { false }) async {
        guard let endpoint = config.endpoint(named: name), let executor = executors[name] else { return }
        await work(endpoint: endpoint, executor: executor, untilIdle: untilIdle, stopping: stopping)
        await commits.idle()
    }

    private func work(endpoint: EndpointConfig, executor: any ModelExecutor, untilIdle: Bool, stopping: @Sendable () -> Bool) async {
        let name = endpoint.name
        let batch = executor.claimBatch
        while !Task.isCancelled && !stopping() {
            let claim: ClaimResult
            do {
                claim = try await ledger.claimNext(endpoints: [name], owner: owner, now: Date(), batch: batch)
            } catch {
                logger.error("could not claim from the ledger", metadata: ["spool.endpoint": "\(name)", "spool.error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            if publishesOwnResults { for expired in claim.expired { await publisher.publish(expired) } }
            guard !claim.batch.isEmpty else {
                publisher.trash.emptyIfDue()
                if untilIdle { return }
                await doorbells[name]?.wait(timeout: Self.idlePoll)
                continue
            }
            publisher.trash.noteActivity()
            if publisher.trash.isOverfull { publisher.trash.empty() }
            for request in claim.batch {
                // Stopping with claims left: shutdown gives them back to the queue.
                if Task.isCancelled || stopping() { return }
                await run(request, endpoint: endpoint, executor: executor)
            }
        }
    }

    /// How an attempt ended, seen from the worker.
    enum AttemptEnd {
        case finished(AttemptResult)
        case timedOut
        /// The worker was cancelled (shutdown): the request goes back to the queue.
        case interrupted
    }

    /// Outputs at least this large are fsynced by their worker (in parallel, and without holding
    /// up a batch of small ones); smaller ones are made durable by the group commit.
    static let workerSyncBytes = 1 << 20

    /// Whether `request` is small enough to share a claim batch of `executor` (a builtin model
    /// with a payload of at most 256 KiB): it runs in microseconds, and its output is small.
    static func isQuick(_ request: InferenceRequest, on executor: any ModelExecutor) -> Bool {
        let batch = executor.claimBatch
        return batch.more > 0 && request.payloadBytes <= batch.maxBytes && batch.maxBytes < workerSyncBytes
    }

    /// Runs one claimed request and hands its outcome to the group commit.
    func run(_ request: InferenceRequest, endpoint: EndpointConfig, executor: any ModelExecutor) async {
        noteHandled(request.id)
        let partial = partialPath(for: request)
        let output: Int32
        do {
            output = try publisher.trash.recycle(to: partial) ?? SystemCalls.open(partial, O_WRONLY | O_CREAT | O_TRUNC)
        } catch {
            let failure = Failure(.outputWriteFailed, "The output could not be created: \(error).")
            await commits.submit(FinishedRun(request: request, result: .failed(failure), partial: partial, output: -1))
            return
        }
        let end = await attempt(request, endpoint: endpoint, executor: executor, output: output)
        var result: AttemptResult
        switch end {
        case .interrupted:
            close(output)
            _ = unlink(partial)
            return  // requeued with the owner's other requests at shutdown
        case .timedOut:
            result = .failed(Failure(.invocationTimeout, "The model did not finish within \(request.timeoutSeconds) seconds."))
        case .finished(let finished):
            result = finished
        }
        var unsynced: Int32 = -1
        if case .succeeded = result {
            var info = stat()
            if Self.isQuick(request, on: executor) {
                unsynced = output  // its output is small too
            } else if fstat(output, &info) == 0, info.st_size < Self.workerSyncBytes {
                unsynced = output
            } else {
                do {
                    try SystemCalls.fsync(output, path: partial)
                } catch {
                    result = .failed(Failure(.outputWriteFailed, "The output could not be written: \(error)."))
                }
            }
        }
        if unsynced < 0 { close(output) }
        await commits.submit(FinishedRun(request: request, result: result, partial: partial, output: unsynced))
    }

    /// Runs the model with the request's timeout, writing to `output`.
    func attempt(_ request: InferenceRequest, endpoint: EndpointConfig, executor: any ModelExecutor, output: Int32) async -> AttemptEnd {
        let inputPath = layout.path(request.claimedPayloadPath)
        let input: Int32
        do {
            input = try PayloadFile.openForReading(inputPath)
        } catch {
            return .finished(.failed(Failure(.inputUnreadable, "The payload could not be opened: \(error).")))
        }
        defer { close(input) }

        let progress = AtomicCounter()
        let invocation = Invocation(
            request: request, inputPath: inputPath, input: input, output: output, chunkBytes: endpoint.chunkBytes,
            progress: { bytes in progress.store(bytes) }
        )
        if Self.isQuick(request, on: executor) {
            // It runs in microseconds, long before a timeout (1 s at least) or a cancellation
            // could be noticed: no watchdog, and no hand-off to another thread.
            let result = await executor.invoke(invocation)
            return Task.isCancelled ? .interrupted : Self.unlessRewritten(.finished(result), input: input, request: request)
        }
        let end = await withTaskGroup(of: AttemptEnd?.self) { group -> AttemptEnd in
            group.addTask { .finished(await executor.invoke(invocation)) }
            group.addTask { [ledger, owner] in
                // The watchdog: the timeout, progress, and cancellation by `spool cancel` from
                // any process. It also starts writeback of what the model wrote so far (a command
                // writes the output file itself), so the fsync at the end has little left to do.
                let deadline = ContinuousClock.now + .seconds(request.timeoutSeconds)
                var nextProgress = ContinuousClock.now + Self.progressInterval
                while !Task.isCancelled {
                    let left = deadline - ContinuousClock.now
                    if left <= .zero { return .timedOut }
                    try? await Task.sleep(for: min(left, Self.writebackInterval))
                    if Task.isCancelled { break }
                    _ = spool_start_writeback(output)
                    if ContinuousClock.now >= deadline { return .timedOut }
                    guard ContinuousClock.now >= nextProgress else { continue }
                    nextProgress = ContinuousClock.now + Self.progressInterval
                    let running = (try? await ledger.recordProgress(id: request.id, owner: owner, bytes: progress.load())) ?? true
                    if !running { return .finished(.failed(Failure(.cancelled, "The request was cancelled."))) }
                }
                return nil
            }
            var first: AttemptEnd?
            while first == nil, let next = await group.next() { first = next }
            group.cancelAll()
            return first ?? .interrupted
        }
        if Task.isCancelled { return .interrupted }
        return Self.unlessRewritten(end, input: input, request: request)
    }

    /// A success over a payload whose size changed while it ran (its writer did not follow the
    /// drop contract and was still writing) is a failure: the output may mix two versions.
    static func unlessRewritten(_ end: AttemptEnd, input: Int32, request: InferenceRequest) -> AttemptEnd {
        guard case .finished(.succeeded) = end else { return end }
        var info = stat()
        guard fstat(input, &info) == 0, Int64(info.st_size) != request.payloadBytes else { return end }
        return .finished(.failed(Failure(
            .invalidRequest,
            "The payload changed while it was processed (\(request.payloadBytes) bytes when it arrived, \(info.st_size) now): "
                + "write it under a temporary name and move it into place when it is complete.")))
    }
}
