import CSpoolSystem
import Foundation
import Logging
import SpoolCore
import SpoolExecutors
import SpoolStore
import Synchronization
import SpoolSystem

/// The heart of a running Spool: claims dropped payloads into the ledger, runs queued requests
/// through their endpoint's model, and publishes results. `spool serve` and `spool drain` wire it
/// into services; tests drive it in-process.
public final class SpoolEngine: Sendable {
    public let layout: SpoolLayout
    public let config: SpoolConfig
    public let ledger: any Ledger
    public let publisher: ResultPublisher
    let claimer: PayloadClaimer
    /// Where payloads become requests: drops, `invoke` and the HTTP API.
    let admissions: Admissions
    let executors: [String: any ModelExecutor]
    let doorbells: [String: Doorbell]
    let ids = InferenceIDGenerator()
    let ownerLock: OwnerLock
    public let logger: Logger
    /// The time the engine goes by: timeouts, TTLs, the services' rounds (tests move it).
    public let clock: SpoolClock
    /// Runs each claimed request's attempt through its model, with its watchdog.
    let attempts: AttemptRunner
    /// Finished attempts on their way to the disk, the ledger and the publisher.
    let commits: RunCommitter
    /// Set when graceful shutdown begins: the HTTP API answers 503 from then on.
    let stopping: AtomicFlag
    /// Requests this process admitted or ran, in order, without repeats (for `drain`'s report).
    let handled = Mutex<(ids: [String], seen: Set<String>)>(([], []))

    public var owner: String { ownerLock.owner }

    /// The ledger when it keeps liveness itself (PostgreSQL): leases instead of lock files,
    /// ledger-first finishing, and one publisher for the cluster.
    public var leasing: (any LeasingLedger)? { ledger as? any LeasingLedger }

    /// Whether this process publishes (markers, events, notifications) what it finishes itself;
    /// with a leasing ledger, the publisher does (`PublisherService`).
    public var publishesOwnResults: Bool { leasing == nil }

    /// Which owners are alive, as of now: by their lease with a leasing ledger, else by their
    /// lock file. With a lease list that cannot be read, everyone counts as alive (nothing is
    /// taken over on a guess).
    func liveness() async -> @Sendable (String) -> Bool {
        guard let leasing else {
            let layout = self.layout
            return { OwnerLock.isAlive(layout: layout, owner: $0) }
        }
        guard let live = try? await leasing.liveOwners() else { return { _ in true } }
        let me = owner
        return { $0 == me || live.contains($0) }
    }

    /// Where an attempt writes its output before it is published. With a leasing ledger, one per
    /// attempt, named by its owner and its start (a process that lost its lease may still be
    /// writing its own, and the publisher tells the finisher's by the start the ledger keeps).
    func partialPath(for request: InferenceRequest) -> String {
        let name = leasing == nil ? "\(request.claimToken).out" : Self.partialName(request, owner: owner)
        return layout.path("\(SpoolLayout.partialDirectory)/\(name)")
    }

    static func partialName(_ request: InferenceRequest, owner: String) -> String {
        "\(request.claimToken).\(owner)\(partialSuffix(request))"
    }

    /// The end of the partial output's name of `request`'s current (or last) attempt.
    static func partialSuffix(_ request: InferenceRequest) -> String {
        ".\(request.startedAt?.millisecondsSince1970 ?? 0).out"
    }
    /// Where this process writes down its models' process groups (see `ProcessGroupRecord`).
    public var processGroupsDirectory: String { layout.path("\(SpoolLayout.groupsDirectory)/\(ownerLock.owner)") }

    public init(
        layout: SpoolLayout, config: SpoolConfig, ledger: any Ledger, logger: Logger,
        observers: [any PublicationObserver] = [], clock: SpoolClock = .system
    ) throws {
        self.layout = layout
        self.clock = clock
        self.config = config
        self.ledger = ledger
        self.logger = logger
        let folders = FolderPool(layout: layout)
        publisher = ResultPublisher(layout: layout, config: config, ledger: ledger, logger: logger, observers: observers, folders: folders)
        // Spool's own folders go to block groups of their own (ext4 `chattr +T` on `.spool`): the
        // inodes they allocate then never queue behind what users delete in their folders.
        try SystemCalls.makeDirectories(layout.path(SpoolLayout.internalDirectory))
        _ = spool_mark_top_directory(layout.path(SpoolLayout.internalDirectory))
        for directory in [SpoolLayout.partialDirectory, SpoolLayout.claimedDirectory] {
            try SystemCalls.makeDirectories(layout.path(directory))
        }
        for endpoint in config.endpoints {
            for directory in [endpoint.incomingDirectory, endpoint.outputsDirectory, endpoint.errorsDirectory] {
                try SystemCalls.makeDirectories(layout.path(directory))
            }
        }
        ownerLock = try OwnerLock(layout: layout, owner: OwnerLock.newOwnerName(ids: ids))
        let processGroups = ProcessGroupRecord(directory: layout.path("\(SpoolLayout.groupsDirectory)/\(ownerLock.owner)"))
        var executors: [String: any ModelExecutor] = [:]
        var doorbells: [String: Doorbell] = [:]
        for endpoint in config.endpoints {
            executors[endpoint.name] = try ExecutorFactory.make(for: endpoint, processGroups: processGroups, root: layout.root)
            doorbells[endpoint.name] = Doorbell(maxPending: endpoint.concurrency)
        }
        self.executors = executors
        self.doorbells = doorbells
        // No folder fsyncs at claim: the ledger row that follows is not fsynced either (WAL,
        // synchronous=NORMAL), and a process crash loses nothing the page cache holds.
        claimer = PayloadClaimer(layout: layout, ids: ids, owner: ownerLock.owner, syncsDirectories: false, folders: folders)
        attempts = AttemptRunner(layout: layout, ledger: ledger, owner: ownerLock.owner, clock: clock)
        let stopping = AtomicFlag()
        self.stopping = stopping
        let engine = WeakReference<SpoolEngine>()
        commits = RunCommitter(
            layout: layout, ledger: ledger, publisher: publisher, owner: ownerLock.owner, logger: logger, stopping: stopping,
            ledgerFirst: ledger is any LeasingLedger, now: clock.now,
            requeued: { request in engine.value?.wake(request.endpoint) })
        admissions = Admissions(
            layout: layout, config: config, ledger: ledger, claimer: claimer, ids: ids, owner: ownerLock.owner, logger: logger,
            stopping: stopping, now: clock.now, activity: { [trash = publisher.trash] in trash.noteActivity() },
            recorded: { request in await engine.value?.recorded(request) })
        engine.value = self
    }

    /// Token folders and output files made ahead of a burst (see `FolderPool` and `Trash`).
    static let warmStock = 512

    /// Makes the token folders and output files of the next `warmStock` requests now, so that a
    /// burst allocates no inode while the first ones are in flight (afterwards finished requests
    /// give theirs back).
    public func warmUp() {
        claimer.folders?.fill(to: Self.warmStock)
        publisher.trash.stock(to: Self.warmStock)
    }

    /// The drop folders, as absolute paths, by endpoint.
    public var dropFolders: [(endpoint: String, directory: String)] {
        config.endpoints.map { ($0.name, layout.path($0.incomingDirectory)) }
    }

    /// Starts what the endpoints' executors manage (model server instances).
    public func startExecutors() async throws {
        for endpoint in config.endpoints {
            try await executors[endpoint.name]?.start(context: executorContext(endpoint))
        }
    }

    /// Runs the executors' upkeep (the container scalers) until the task is cancelled.
    public func maintainExecutors() async {
        await withDiscardingTaskGroup { group in
            for endpoint in config.endpoints {
                guard let executor = executors[endpoint.name] else { continue }
                let context = executorContext(endpoint)
                group.addTask { await executor.maintain(context: context) }
            }
        }
    }

    private func executorContext(_ endpoint: EndpointConfig) -> ExecutorContext {
        let name = endpoint.name
        return ExecutorContext(endpoint: endpoint) { [ledger] in
            ((try? await ledger.queueStats())?[name]).map { $0.count(.queued) } ?? 0
        }
    }

    /// Stops every model process the executors started.
    public func shutdownExecutors() async {
        for executor in executors.values { await executor.shutdown() }
    }

    /// Model instances running now, by endpoint.
    public var instancesRunning: [String: Int] {
        executors.mapValues(\.instancesRunning)
    }

    /// Wakes a worker of `endpoint`: a request was queued.
    func wake(_ endpoint: String) {
        doorbells[endpoint]?.ring()
    }

    /// Whether graceful shutdown has begun.
    public var isStopping: Bool { stopping.load() }

    /// Wakes every idle worker (shutdown).
    public func wakeAll() {
        doorbells.values.forEach { $0.ringAll() }
    }

    /// Ids of the requests this process admitted or ran.
    public var handledIDs: [String] { handled.withLock { $0.ids } }

    func noteHandled(_ id: String) {
        handled.withLock { h in
            if h.seen.insert(id).inserted { h.ids.append(id) }
        }
    }
}
