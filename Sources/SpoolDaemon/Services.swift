import Foundation
import Logging
import ServiceLifecycle
import SpoolCore
import Synchronization

/// Feeds candidates from an intake source into the engine until graceful shutdown.
struct IntakeService: Service {
    let engine: SpoolEngine
    let source: any IntakeSource

    func run() async throws {
        // Two stages that overlap: claiming a batch (renames) while the previous one is recorded.
        let records = BatchQueue<Admissions.PendingRecord>(limit: 256) { [engine] batch in await engine.record(batch) }
        let lane = BlockingLane("spool.claims")
        let claims = BatchQueue<IntakeCandidate>(limit: 256) { [engine] batch in
            for claimed in await lane.run({ engine.claim(batch) }) { await records.submit(claimed) }
        }
        for await candidate in source.candidates().cancelOnGracefulShutdown() {
            await claims.submit(candidate)
        }
        await claims.idle()
        await records.idle()
    }
}

/// The workers of every endpoint. On graceful shutdown they stop claiming and let in-flight
/// requests finish; the service group cancels what is still running after its grace period,
/// and those requests go back to the queue.
struct WorkerPoolService: Service {
    let engine: SpoolEngine

    func run() async throws {
        let stopping = AtomicFlag()
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for endpoint in engine.config.endpoints {
                    for _ in 0..<endpoint.concurrency {
                        group.addTask {
                            await engine.runWorker(endpoint: endpoint.name) { stopping.load() }
                        }
                    }
                }
            }
        } onGracefulShutdown: {
            stopping.set()
            engine.wakeAll()
        }
    }
}

/// The executors' upkeep: each container endpoint's scaler (instances started on backlog,
/// stopped when idle, health-checked). It stops after the workers, which may still need a
/// server while they finish.
struct ExecutorService: Service {
    let engine: SpoolEngine

    func run() async throws {
        try? await cancelWhenGracefulShutdown { await engine.maintainExecutors() }
        // Executors with nothing to maintain return at once; a service that returns would stop
        // the whole group, so it waits for the group's shutdown.
        try? await gracefulShutdown()
    }
}

/// The rescuer: takes over the work of processes that died, records their half-made claims and
/// publishes what they finished, every `interval` on the engine's clock.
struct RescuerService: Service {
    let engine: SpoolEngine
    let interval: Duration

    func run() async throws {
        await engine.clock.rounds(every: interval) { await engine.recover() }
    }
}

/// Removes finished requests older than `[spool] retain_finished` (with their kept inputs, and
/// their outputs and markers under `retain_outputs`), at start and then every `interval`, in
/// small batches with a pause between them so that the queue's own writes never wait long.
struct RetentionService: Service {
    let engine: SpoolEngine
    let period: TimeInterval
    let interval: Duration

    func run() async throws {
        let retention = Retention(layout: engine.layout, ledger: engine.ledger, removeOutputs: engine.config.retainOutputs)
        let clock = engine.clock
        await clock.rounds(every: interval, startingNow: true) {
            do {
                let summary = try await retention.sweep(finishedBefore: clock.now().addingTimeInterval(-period), between: {
                    try? await cancelWhenGracefulShutdown { try await clock.clock.sleep(for: .milliseconds(20), tolerance: nil) }
                })
                if summary.requests > 0 {
                    engine.logger.info("removed old finished requests", metadata: [
                        "spool.count": "\(summary.requests)", "spool.files": "\(summary.files)",
                    ])
                }
            } catch {
                engine.logger.error("could not remove old finished requests", metadata: ["spool.error": "\(error)"])
            }
        }
    }
}

/// Marks the engine stopping when graceful shutdown begins (it is the last service, so the
/// first to hear of it), so that the HTTP API answers 503 while the workers finish.
struct StoppingNotice: Service {
    let engine: SpoolEngine

    func run() async throws {
        try? await gracefulShutdown()
        engine.stopping.set()
    }
}

/// Keeps this process's lease (a leasing ledger) renewed, six times per lease, until the
/// workers have stopped: it is the first service of the group, so graceful shutdown reaches it
/// last. A renewal that finds the lease lapsed is logged; the attempts this process was running
/// then find, at `finish`, whether their requests were taken over.
struct LeaseService: Service {
    let engine: SpoolEngine
    let leasing: any LeasingLedger

    func run() async throws {
        let interval = max(leasing.leaseDuration / 6, .milliseconds(200))
        await engine.clock.rounds(every: interval) {
            do {
                if try await !leasing.renewLease(owner: engine.owner) {
                    engine.logger.warning("this process's lease had lapsed; requests it was running may have been taken over", metadata: [
                        "spool.owner": "\(engine.owner)",
                    ])
                }
            } catch {
                engine.logger.error("could not renew the lease", metadata: ["spool.error": "\(error)"])
            }
        }
    }
}

/// With a leasing ledger, the one process of the cluster that publishes: it waits for the
/// publisher role, then writes the markers and events of every finished request, sends their
/// notifications, and puts in place the outputs of finishers that died before they could.
/// Another process takes the role over when this one dies.
struct PublisherService: Service {
    let engine: SpoolEngine
    let leasing: any LeasingLedger
    var interval: Duration = .milliseconds(100)

    func run() async throws {
        let stopping = AtomicFlag()
        await withGracefulShutdownHandler {
            do {
                try await leasing.asPublisher(givenUp: stopping.load) { [engine, interval] holding in
                    engine.logger.info("publishing for the cluster", metadata: ["spool.owner": "\(engine.owner)"])
                    while !stopping.load() {
                        await engine.publishFinished(while: holding)
                        try await engine.clock.clock.sleep(for: interval, tolerance: nil)  // ends with the role
                    }
                    // A last round for what the workers finished before they stopped.
                    await engine.publishFinished(while: holding)
                }
            } catch {
                engine.logger.error("the publisher stopped", metadata: ["spool.error": "\(error)"])
            }
        } onGracefulShutdown: {
            stopping.set()
        }
    }
}

/// With a leasing ledger: wakes this process's idle workers when another process queues
/// requests (PostgreSQL `LISTEN`), sooner than their poll would.
struct WakeService: Service {
    let engine: SpoolEngine
    let leasing: any LeasingLedger

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            await leasing.listenForQueued { [engine] endpoint in engine.wake(endpoint) }
        }
    }
}

extension SpoolClock {
    /// Runs `round` every `interval` (first right away with `startingNow`, else after one
    /// interval) until graceful shutdown or cancellation: the loop of the periodic services.
    func rounds(every interval: Duration, startingNow: Bool = false, _ round: () async -> Void) async {
        if startingNow { await round() }
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown { [clock] in try await clock.sleep(for: interval, tolerance: nil) }
            if Task.isCancelled || Task.isShuttingDownGracefully { return }
            await round()
        }
    }
}
