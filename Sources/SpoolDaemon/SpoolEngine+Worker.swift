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
            // Rings up to here announced requests this claim will see (the ring follows the commit).
            let seen = doorbells[name]?.rings
            let claim: ClaimResult
            do {
                claim = try await ledger.claimNext(endpoints: [name], owner: owner, now: clock.now(), batch: batch)
            } catch {
                logger.error("could not claim from the ledger", metadata: ["spool.endpoint": "\(name)", "spool.error": "\(error)"])
                await clock.sleep(for: .seconds(1))
                continue
            }
            if publishesOwnResults { for expired in claim.expired { await publisher.publish(expired) } }
            guard !claim.batch.isEmpty else {
                publisher.trash.emptyIfDue()
                if untilIdle { return }
                await doorbells[name]?.wait(timeout: Self.idlePoll, after: seen)
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
        // A recycled file an in-order model writes keeps its old bytes until it is cut to length.
        let cutsToLength = executor.writesOutputInOrder
        var recycled = false
        do {
            if let fd = publisher.trash.recycle(to: partial, emptied: !cutsToLength) {
                output = fd
                recycled = true
            } else {
                output = try SystemCalls.open(partial, O_WRONLY | O_CREAT | O_TRUNC)
            }
        } catch {
            let failure = Failure(.outputWriteFailed, "The output could not be created: \(error).")
            await commits.submit(FinishedRun(request: request, result: .failed(failure), partial: partial, output: -1))
            return
        }
        let end = await attempts.run(request, endpoint: endpoint, executor: executor, output: output)
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
        if recycled, cutsToLength, case .succeeded = result {
            do throws(SystemError) {
                try publisher.trash.cutRecycled(output, path: partial)
            } catch {
                result = .failed(Failure(.outputWriteFailed, "The output could not be written: \(error)."))
            }
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
}
