import Foundation
import Logging
import SpoolCore
import SpoolIntake
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension SpoolEngine {
    /// How often an idle worker looks at the ledger for requests queued by other processes.
    static let idlePoll = Duration.milliseconds(250)
    /// How often a running request's progress is written to the ledger (and cancellation noticed).
    static let progressInterval = Duration.milliseconds(500)

    /// One worker: claims the oldest queued request of `endpoint` and runs it, until cancelled,
    /// until `stopping()` says so, or (with `untilIdle`) until the queue is empty.
    public func runWorker(endpoint name: String, untilIdle: Bool = false, stopping: @Sendable () -> Bool = { false }) async {
        guard let endpoint = config.endpoint(named: name), let executor = executors[name] else { return }
        while !Task.isCancelled && !stopping() {
            let claim: ClaimResult
            do {
                claim = try await ledger.claimNext(endpoints: [name], owner: owner, now: Date())
            } catch {
                logger.error("could not claim from the ledger", metadata: ["spool.endpoint": "\(name)", "spool.error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            for expired in claim.expired { await publisher.publish(expired) }
            guard let request = claim.claimed else {
                publisher.trash.emptyIfDue()
                if untilIdle { return }
                await doorbells[name]?.wait(timeout: Self.idlePoll)
                continue
            }
            publisher.trash.noteActivity()
            if publisher.trash.isOverfull { publisher.trash.empty() }
            await run(request, endpoint: endpoint, executor: executor)
        }
    }

    /// How an attempt ended, seen from the worker.
    enum AttemptEnd {
        case finished(AttemptResult)
        case timedOut
        /// The worker was cancelled (shutdown): the request goes back to the queue.
        case interrupted
    }

    func run(_ request: InferenceRequest, endpoint: EndpointConfig, executor: any ModelExecutor) async {
        noteHandled(request.id)
        let partial = layout.path("\(SpoolLayout.partialDirectory)/\(request.claimToken).out")
        let end = await attempt(request, endpoint: endpoint, executor: executor, partial: partial)
        let result: AttemptResult
        switch end {
        case .interrupted:
            _ = unlink(partial)
            return  // requeued with the owner's other requests at shutdown
        case .timedOut:
            _ = unlink(partial)
            result = .failed(Failure(.invocationTimeout, "The model did not finish within \(request.timeoutSeconds) seconds."))
        case .finished(.failed(let failure)):
            _ = unlink(partial)
            result = .failed(failure)
        case .finished(.succeeded):
            result = publishOutput(request, partial: partial)
        }
        let finished: InferenceRequest?
        do {
            finished = try await ledger.finish(id: request.id, owner: owner, result: result, now: Date())
        } catch {
            logger.error("could not record a result", metadata: ["spool.request.id": "\(request.id)", "spool.error": "\(error)"])
            return
        }
        if let finished {
            if finished.state.isTerminal { await publisher.publish(finished) }
        } else if let current = try? await ledger.request(id: request.id), current.state.isTerminal, !current.notified {
            // Cancelled while running: the marker and event are ours to write.
            await publisher.publish(current)
        }
    }

    /// Runs the model with the request's timeout, writing to `partial`.
    func attempt(_ request: InferenceRequest, endpoint: EndpointConfig, executor: any ModelExecutor, partial: String) async -> AttemptEnd {
        let inputPath = layout.path(request.claimedPayloadPath)
        let input: Int32
        do {
            input = try PayloadFile.openForReading(inputPath)
        } catch {
            return .finished(.failed(Failure(.inputUnreadable, "The payload could not be opened: \(error).")))
        }
        defer { close(input) }
        let output: Int32
        do {
            output = try Posix.open(partial, O_WRONLY | O_CREAT | O_TRUNC)
        } catch {
            return .finished(.failed(Failure(.outputWriteFailed, "The output could not be created: \(error).")))
        }
        defer { close(output) }

        let progress = AtomicCounter()
        let invocation = Invocation(
            request: request, inputPath: inputPath, input: input, output: output, chunkBytes: endpoint.chunkBytes,
            progress: { bytes in progress.store(bytes) }
        )
        let end = await withTaskGroup(of: AttemptEnd?.self) { group -> AttemptEnd in
            group.addTask { .finished(await executor.invoke(invocation)) }
            group.addTask { [ledger, owner] in
                // The watchdog: the timeout, progress, and cancellation by `spool cancel` from
                // any process.
                let deadline = ContinuousClock.now + .seconds(request.timeoutSeconds)
                while !Task.isCancelled {
                    let left = deadline - ContinuousClock.now
                    if left <= .zero { return .timedOut }
                    try? await Task.sleep(for: min(left, Self.progressInterval))
                    if Task.isCancelled { break }
                    if ContinuousClock.now >= deadline { return .timedOut }
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
        if case .finished(.succeeded) = end {
            // The output's bytes reach the disk before its rename makes it visible.
            do {
                try Posix.fsync(output, partial)
            } catch {
                return .finished(.failed(Failure(.outputWriteFailed, "The output could not be written: \(error).")))
            }
        }
        return end
    }

    /// Makes a finished (already fsynced) output visible: rename to its final name, fsync the
    /// folder, and remove a stale marker for the same path.
    func publishOutput(_ request: InferenceRequest, partial: String) -> AttemptResult {
        let destination = layout.path(request.outputLocation)
        do {
            let directory = (destination as NSString).deletingLastPathComponent
            try Posix.makeDirectories(directory)
            try Posix.rename(partial, destination)
            try Posix.fsyncDirectory(directory)
            try Posix.unlinkIfPresent(layout.path(request.failureLocation))
            return .succeeded
        } catch {
            _ = unlink(partial)
            return .failed(Failure(.outputWriteFailed, "The output could not be written: \(error)."))
        }
    }
}
