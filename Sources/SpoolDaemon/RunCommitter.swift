import CSpoolSystem
import Foundation
import Logging
import SpoolCore
import SpoolStore

#if canImport(Glibc)
import Glibc
import SpoolSystem
#endif

/// An attempt a worker has finished, waiting to be committed.
struct FinishedRun: Sendable {
    var request: InferenceRequest
    var result: AttemptResult
    /// The partial output of a success.
    var partial: String
    /// The partial output, still open, when its bytes may not be on disk yet; -1 otherwise.
    var output: Int32
}

/// Commits finished attempts in batches (see `BatchQueue`), in two stages that overlap: the
/// first makes a batch's outputs durable and visible under their final names while the second
/// records the previous batch in the ledger and publishes its markers and events. The order per
/// request is the one docs/crash-safety.md argues for: output bytes durable → rename → folder
/// durable → ledger → publication.
///
/// With a leasing ledger (`ledgerFirst`) the ledger comes before the rename: output bytes
/// durable → ledger (fenced by owner: a process whose lease lapsed and whose request was taken
/// over gets nil, and drops its output) → rename → folder durable. The cluster's publisher
/// writes markers and events, and renames an output whose finisher died before it could.
final class RunCommitter: Sendable {
    private let durable: BatchQueue<FinishedRun>
    private let recorded: BatchQueue<FinishedRun>

    /// - Parameters:
    ///   - stopping: set at graceful shutdown; a ledger that keeps failing is then given up on
    ///     (the rows stay `running` for this owner, and the next start requeues them).
    ///   - requeued: told of each request a retryable failure put back in the queue, once that is
    ///     recorded (the engine wakes a worker for its next attempt).
    init(
        layout: SpoolLayout, ledger: any Ledger, publisher: ResultPublisher, owner: String, logger: Logger, stopping: AtomicFlag,
        ledgerFirst: Bool = false, now: @escaping @Sendable () -> Date = SpoolClock.system.now,
        requeued: @escaping @Sendable (InferenceRequest) -> Void = { _ in }
    ) {
        let newest = publisher.newest
        let publishing = BlockingLane("spool.publish")
        let lane = BlockingLane("spool.commit")
        let recorded = BatchQueue<FinishedRun> { [ledger, publisher, owner, logger] batch in
            let finished = if ledgerFirst {
                await Self.recordFirst(batch, ledger: ledger, owner: owner, logger: logger, lane: lane, layout: layout, newest: newest, stopping: stopping, now: now)
            } else {
                await Self.record(batch, ledger: ledger, publisher: publisher, owner: owner, logger: logger, lane: publishing, stopping: stopping, now: now)
            }
            for row in finished where row?.state == .queued { requeued(row!) }
        }
        self.recorded = recorded
        durable = BatchQueue<FinishedRun> { [layout, newest] batch in
            let results = await lane.run {
                var results = batch.map(\.result)
                Self.syncOutputs(batch, &results)
                if !ledgerFirst { Self.publishOutputs(batch, &results, layout: layout, newest: newest) }
                return results
            }
            for (run, result) in zip(batch, results) {
                var run = run
                run.result = result
                run.output = -1
                await recorded.submit(run)
            }
        }
    }

    /// Hands over a finished attempt; waits only while the queue is full.
    func submit(_ run: FinishedRun) async {
        await durable.submit(run)
    }

    /// Waits until everything submitted so far is committed and published.
    func idle() async {
        await durable.idle()
        await recorded.idle()
    }

    /// Records the batch, then publishes what finished; returns the ledger's rows (none when it
    /// gave up at shutdown).
    private static func record(
        _ batch: [FinishedRun], ledger: any Ledger, publisher: ResultPublisher, owner: String, logger: Logger, lane: BlockingLane,
        stopping: AtomicFlag, now: @Sendable () -> Date
    ) async -> [InferenceRequest?] {
        let attempts = batch.map { FinishedAttempt(id: $0.request.id, result: $0.result) }
        // Tried until recorded: a request whose result is on disk must not stay `running`. Only
        // at shutdown does it give up; the rows then stay `running` for this owner, and the next
        // start requeues them.
        guard let finished = await persistently("recording \(batch.count) finished requests", logger: logger, giveUp: stopping.load, {
            try await ledger.finish(attempts, owner: owner, now: now())
        }) else { return [] }
        var finishedRows: [InferenceRequest] = []
        for (run, row) in zip(batch, finished) {
            if let row {
                finishedRows.append(row)
            } else if let current = try? await ledger.request(id: run.request.id), current.state.isTerminal, !current.notified {
                // Cancelled while running: the marker and event are ours to write.
                finishedRows.append(current)
            }
        }
        await publisher.publish(finishedRows, on: lane)
        return finished
    }

    /// Ledger first: records the batch (fenced by owner), then renames the outputs of the
    /// requests the ledger now shows succeeded, and drops the others' (a request taken over, or
    /// one whose output could not be made durable). Returns the ledger's rows.
    private static func recordFirst(
        _ batch: [FinishedRun], ledger: any Ledger, owner: String, logger: Logger, lane: BlockingLane, layout: SpoolLayout,
        newest: NewestResults, stopping: AtomicFlag, now: @Sendable () -> Date
    ) async -> [InferenceRequest?] {
        let attempts = batch.map { FinishedAttempt(id: $0.request.id, result: $0.result) }
        guard let finished = await persistently("recording \(batch.count) finished requests", logger: logger, giveUp: stopping.load, {
            try await ledger.finish(attempts, owner: owner, now: now())
        }) else {
            for run in batch { _ = unlink(run.partial) }
            return []
        }
        var placing: [FinishedRun] = []
        for (run, row) in zip(batch, finished) {
            var row = row
            if row == nil, case .succeeded = run.result {
                // A connection lost as the commit went through makes a retried `finish` find the
                // request no longer running: it is ours if it succeeded with our attempt's start.
                if let current = try? await ledger.request(id: run.request.id), current.state == .succeeded,
                   current.startedAt == run.request.startedAt {
                    row = current
                }
            }
            if let row, row.state == .succeeded {
                placing.append(run)
            } else {
                if row == nil { logger.notice("an attempt finished after its request was taken over; its output is dropped", metadata: ["spool.request.id": "\(run.request.id)"]) }
                _ = unlink(run.partial)
            }
        }
        guard !placing.isEmpty else { return finished }
        let failures = await lane.run { [placing] in
            var results = placing.map(\.result)
            Self.publishOutputs(placing, &results, layout: layout, newest: newest)
            return zip(placing, results).compactMap { run, result -> String? in
                if case .failed(let failure) = result { return "\(run.request.id): \(failure.reason)" }
                return nil
            }
        }
        for failure in failures {
            // The ledger says succeeded: the publisher renames a partial left behind, or reports the output missing.
            logger.error("a succeeded request's output could not be put in place", metadata: ["spool.error": "\(failure)"])
        }
        return finished
    }

    /// Makes the outputs' bytes durable (`OutputFiles.makeDurable`); closes every descriptor.
    private static func syncOutputs(_ batch: [FinishedRun], _ results: inout [AttemptResult]) {
        let errors = OutputFiles.makeDurable(batch.map { ($0.output, $0.partial) })
        for (i, error) in errors.enumerated() {
            if let error { results[i] = .failed(Failure(.outputWriteFailed, "The output could not be written: \(error).")) }
        }
    }

    /// Puts each succeeded output in place (`OutputFiles.place`). An output of a request older
    /// than one that already published for the same path is dropped: the newest request wins.
    private static func publishOutputs(_ batch: [FinishedRun], _ results: inout [AttemptResult], layout: SpoolLayout, newest: NewestResults) {
        var placing: [Int] = []
        for i in batch.indices {
            guard case .succeeded = results[i], newest.mayPublish(batch[i].request.outputLocation, seq: batch[i].request.seq) else {
                _ = unlink(batch[i].partial)
                continue
            }
            placing.append(i)
        }
        let errors = OutputFiles.place(placing.map { i in
            OutputFiles.Placement(
                partial: batch[i].partial, destination: layout.path(batch[i].request.outputLocation),
                staleMarker: layout.path(batch[i].request.failureLocation))
        })
        for (i, error) in zip(placing, errors) {
            if let error { results[i] = .failed(Failure(.outputWriteFailed, "The output could not be written: \(error).")) }
        }
    }
}
