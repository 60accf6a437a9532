import CSpoolSystem
import Foundation
import SpoolCore
import SpoolStore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs one attempt of a claimed request through its model: opens the payload (never through a
/// link, never blocking on a FIFO), invokes the model with a watchdog on the engine's clock (the
/// request's timeout, its progress in the ledger, cancellation by `spool cancel` from any
/// process, writeback of the output as it grows), and refuses a success over a payload that
/// changed while it ran.
struct AttemptRunner: Sendable {
    /// How an attempt ended, seen from the worker.
    enum End {
        case finished(AttemptResult)
        case timedOut
        /// The worker was cancelled (shutdown): the request goes back to the queue.
        case interrupted
    }

    /// How often a running request's progress is written to the ledger (and cancellation noticed).
    static let progressInterval = Duration.milliseconds(500)
    /// How often a running request's output is handed to writeback.
    static let writebackInterval = Duration.milliseconds(50)

    let layout: SpoolLayout
    let ledger: any Ledger
    let owner: String
    let clock: SpoolClock

    /// Runs the model with the request's timeout, writing to `output`.
    func run(_ request: InferenceRequest, endpoint: EndpointConfig, executor: any ModelExecutor, output: Int32) async -> End {
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
        if SpoolEngine.isQuick(request, on: executor) {
            // It runs in microseconds, long before a timeout (1 s at least) or a cancellation
            // could be noticed: no watchdog, and no hand-off to another thread.
            let result = await executor.invoke(invocation)
            return Task.isCancelled ? .interrupted : Self.unlessRewritten(.finished(result), input: input, request: request)
        }
        let end = await withTaskGroup(of: End?.self) { group -> End in
            group.addTask { .finished(await executor.invoke(invocation)) }
            group.addTask { await watch(request, output: output, progress: progress) }
            var first: End?
            while first == nil, let next = await group.next() { first = next }
            group.cancelAll()
            return first ?? .interrupted
        }
        if Task.isCancelled { return .interrupted }
        return Self.unlessRewritten(end, input: input, request: request)
    }

    /// The watchdog: the timeout, progress, and cancellation by `spool cancel` from any process.
    /// It also starts writeback of what the model wrote so far (a command writes the output file
    /// itself), so the fsync at the end has little left to do. Nil when cancelled (the model
    /// ended first).
    private func watch(_ request: InferenceRequest, output: Int32, progress: AtomicCounter) async -> End? {
        let elapsed = clock.stopwatch()
        let timeout = Duration.seconds(request.timeoutSeconds)
        var nextProgress = Self.progressInterval
        while !Task.isCancelled {
            let left = timeout - elapsed()
            if left <= .zero { return .timedOut }
            guard await clock.sleep(for: min(left, Self.writebackInterval)) else { return nil }
            _ = spool_start_writeback(output)
            let now = elapsed()
            if now >= timeout { return .timedOut }
            guard now >= nextProgress else { continue }
            nextProgress = now + Self.progressInterval
            let running = (try? await ledger.recordProgress(id: request.id, owner: owner, bytes: progress.load())) ?? true
            if !running { return .finished(.failed(Failure(.cancelled, "The request was cancelled."))) }
        }
        return nil
    }

    /// A success over a payload whose size changed while it ran (its writer did not follow the
    /// drop contract and was still writing) is a failure: the output may mix two versions.
    static func unlessRewritten(_ end: End, input: Int32, request: InferenceRequest) -> End {
        guard case .finished(.succeeded) = end else { return end }
        var info = stat()
        guard fstat(input, &info) == 0, Int64(info.st_size) != request.payloadBytes else { return end }
        return .finished(.failed(Failure(
            .invalidRequest,
            "The payload changed while it was processed (\(request.payloadBytes) bytes when it arrived, \(info.st_size) now): "
                + "write it under a temporary name and move it into place when it is complete.")))
    }
}
