import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import SpoolCore
import SpoolIntake
import SpoolLedger

/// Runs Spool on a root: `serve` until a signal, or `drain` what is there and stop.
public struct SpoolDaemon: Sendable {
    public struct Options: Sendable {
        /// Scan every this many seconds instead of watching with inotify.
        public var pollSeconds: Double?
        /// How long in-flight requests may run after SIGTERM before they go back to the queue.
        public var gracePeriod: Duration = .seconds(10)
        /// How often finished requests past `[spool] retain_finished` are looked for.
        public var retentionInterval: Duration = .seconds(60)

        public init(pollSeconds: Double? = nil) {
            self.pollSeconds = pollSeconds
        }
    }

    public let engine: SpoolEngine
    /// Delivers the endpoints' hooks and webhooks; runs beside the workers.
    public let notifier: Notifier
    let logger: Logger

    /// Opens the ledger and prepares the engine (folders, owner lock) and the notifier.
    /// Recovery runs in `serve`/`drain`.
    public init(
        layout: SpoolLayout, config: SpoolConfig, logger: Logger, observers: [any PublicationObserver] = [],
        notifierOptions: Notifier.Options = Notifier.Options(), clock: SpoolClock = .system
    ) async throws {
        let ledger = try await LedgerStore.open(layout: layout, config: config, logger: logger)
        notifier = Notifier(layout: layout, config: config, ledger: ledger, logger: logger, options: notifierOptions)
        engine = try SpoolEngine(
            layout: layout, config: config, ledger: ledger, logger: logger, observers: [notifier] + observers, clock: clock)
        self.logger = logger
    }

    /// The metrics of `spool stats`, with this daemon's instances read live (for `GET /metrics`).
    public var metrics: MetricsCollector { MetricsCollector(engine: engine) }

    /// Watches, queues and runs until SIGTERM or SIGINT (or task cancellation), then stops
    /// gracefully: intake first, then workers; unfinished requests return to the queue.
    /// - Parameter services: more services to run beside intake and workers (the HTTP API); they
    ///   are shut down after the workers, and the engine says it is stopping from the start of
    ///   graceful shutdown on.
    public func serve(options: Options, services: [ServiceGroupConfiguration.ServiceConfiguration] = [], signals: [UnixSignal] = [.sigterm, .sigint]) async throws {
        // With leases, this process is alive once its lease is taken: before it claims anything.
        if let leasing = engine.leasing { try await leasing.renewLease(owner: engine.owner) }
        await engine.recover(settleSeconds: 0)
        engine.warmUp()
        try await engine.startExecutors()
        let source: any IntakeSource = if let seconds = options.pollSeconds {
            PollingIntake(folders: engine.dropFolders, interval: .milliseconds(Int(seconds * 1000)))
        } else {
            try InotifyIntake(folders: engine.dropFolders) { [logger] error in
                logger.warning("cannot watch or read a folder below a drop folder; trying again every few seconds", metadata: [
                    "spool.error": "\(error)",
                ])
            }
        }
        let retention: [ServiceGroupConfiguration.ServiceConfiguration] = engine.config.retainFinished.map { period in
            [.init(service: RetentionService(engine: engine, period: period, interval: options.retentionInterval), serviceName: "retention")]
        } ?? []
        // Shut down in reverse order: the notifier and the status file last, after the workers
        // have published what they finished.
        // The first service told of graceful shutdown marks the engine stopping.
        // With leases: the lease is renewed until everything else has stopped, and the
        // publisher stops after the workers (its last round publishes what they finished).
        let leaseServices: [ServiceGroupConfiguration.ServiceConfiguration] = engine.leasing.map {
            [.init(service: LeaseService(engine: engine, leasing: $0), serviceName: "lease")]
        } ?? []
        let publisherServices: [ServiceGroupConfiguration.ServiceConfiguration] = engine.leasing.map {
            [.init(service: PublisherService(engine: engine, leasing: $0), serviceName: "publisher"),
             .init(service: WakeService(engine: engine, leasing: $0), serviceName: "wake")]
        } ?? []
        var all = leaseServices
        all.append(.init(service: notifier, serviceName: "notifier"))
        all += publisherServices
        all.append(.init(service: DaemonStatusService(engine: engine, interval: .seconds(2)), serviceName: "status"))
        var configuration = ServiceGroupConfiguration(
            services: all + services + [
                .init(service: ExecutorService(engine: engine), serviceName: "executors"),
                .init(service: WorkerPoolService(engine: engine), serviceName: "workers"),
                .init(service: RescuerService(engine: engine, interval: .seconds(5)), serviceName: "rescuer"),
                .init(service: IntakeService(engine: engine, source: source), serviceName: "intake"),
            ] + retention + [
                .init(service: StoppingNotice(engine: engine), serviceName: "stopping"),
            ],
            gracefulShutdownSignals: signals,
            logger: logger
        )
        configuration.maximumGracefulShutdownDuration = options.gracePeriod
        let group = ServiceGroup(configuration: configuration)
        logger.info("spool is running", metadata: [
            "spool.root": "\(engine.layout.root)",
            "spool.endpoints": "\(engine.config.endpoints.map(\.name).joined(separator: ","))",
        ])
        defer {
            DaemonStatus.remove(for: engine)
            logger.info("spool stopped")
        }
        do {
            try await group.run()
        } catch {
            _ = try? await engine.ledger.requeue(owner: engine.owner)
            _ = try? await engine.leasing?.releaseLease(owner: engine.owner)
            await engine.shutdownExecutors()
            throw error
        }
        try await engine.ledger.requeue(owner: engine.owner)
        try? await engine.leasing?.releaseLease(owner: engine.owner)
        await engine.shutdownExecutors()
        await engine.publisher.flush()
    }

    /// Admits everything in the drop folders, processes the queue until it is empty, waits for
    /// the requests it admitted to finish (another process may be running some), and returns
    /// those and the ones it ran: the caller's exit status is 0 when all succeeded.
    public func drain() async throws -> [InferenceRequest] {
        let notifying = Task { [notifier] in try? await notifier.run() }
        // With leases: the lease held throughout, and a publisher that runs until what this
        // drain handled is published (by it, or by the process that holds the role).
        let published = AtomicFlag()
        var leaseRenewal: Task<Void, Never>?
        var publishing: Task<Void, Never>?
        if let leasing = engine.leasing {
            try await leasing.renewLease(owner: engine.owner)
            leaseRenewal = Task { [engine] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: max(leasing.leaseDuration / 6, .milliseconds(200)))
                    _ = try? await leasing.renewLease(owner: engine.owner)
                }
            }
            publishing = Task { [engine] in
                try? await leasing.asPublisher(givenUp: { published.load() }) { holding in
                    while !published.load() {
                        await engine.publishFinished(while: holding)
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    await engine.publishFinished(while: holding)
                }
            }
        }
        defer {
            notifying.cancel()
            published.set()
            publishing?.cancel()
            leaseRenewal?.cancel()
            DaemonStatus.remove(for: engine)
        }
        await engine.recover(settleSeconds: 0)
        try await engine.startExecutors()
        let maintaining = Task { [engine] in await engine.maintainExecutors() }
        defer { maintaining.cancel() }
        DaemonStatus.write(for: engine)
        for (endpoint, directory) in engine.dropFolders {
            let candidates = await DirectoryScanner.settledScan(endpoint: endpoint, directory: directory)
            for start in stride(from: 0, to: candidates.count, by: 1024) {
                await engine.admit(Array(candidates[start..<min(start + 1024, candidates.count)]))
            }
        }
        var finished: [String: InferenceRequest] = [:]
        var missing: Set<String> = []
        while true {
            await withDiscardingTaskGroup { group in
                for endpoint in engine.config.endpoints {
                    for _ in 0..<endpoint.concurrency {
                        group.addTask { await engine.runWorker(endpoint: endpoint.name, untilIdle: true) }
                    }
                }
            }
            var anyQueued = false
            let ids = engine.handledIDs
            for id in ids where finished[id] == nil && !missing.contains(id) {
                guard let request = try await engine.ledger.request(id: id) else {
                    missing.insert(id)
                    continue
                }
                if request.state.isTerminal {
                    finished[id] = request
                } else if request.state == .queued {
                    anyQueued = true
                }
            }
            if finished.count + missing.count >= ids.count { break }
            // Queued again (a retryable failure): run the workers again. Otherwise another
            // process is running the rest: wait for it.
            if !anyQueued { try await Task.sleep(for: .milliseconds(100)) }
        }
        let results = engine.handledIDs.compactMap { finished[$0] }
        maintaining.cancel()
        await maintaining.value
        await engine.shutdownExecutors()
        if let leasing = engine.leasing {
            // Published by whichever process is the publisher; bounded.
            let deadline = ContinuousClock.now + .seconds(60)
            var waiting = Set(results.map(\.id))
            while !waiting.isEmpty && ContinuousClock.now < deadline {
                for id in waiting where (try? await engine.ledger.request(id: id))?.notified ?? true { waiting.remove(id) }
                if !waiting.isEmpty { try? await Task.sleep(for: .milliseconds(100)) }
            }
            if !waiting.isEmpty { logger.error("finished requests still unpublished at exit", metadata: ["spool.count": "\(waiting.count)"]) }
            published.set()
            await publishing?.value
            leaseRenewal?.cancel()
            try? await leasing.releaseLease(owner: engine.owner)
        }
        await engine.publisher.flush()
        await engine.recover(settleSeconds: 0)
        // Deliver pending hooks and webhooks (bounded by the notifier's flush timeout).
        if !(await notifier.finish()) {
            logger.error("notifications still pending at exit", metadata: ["spool.count": "\(notifier.pendingCount)"])
        }
        notifying.cancel()
        await notifying.value
        return results
    }
}
