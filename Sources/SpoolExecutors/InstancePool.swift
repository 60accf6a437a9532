import Foundation
import SpoolCore
import Synchronization

/// The model server instances of one container endpoint, between `min` and `max`.
///
/// - Dispatch: an invocation takes a free slot (of `slots` per instance) on a ready instance; when
///   none is free and fewer than `max` instances run, one is started (a cold start, also from
///   zero) and the invocation waits for it; otherwise it waits for a slot. Waiters are served
///   first come, first served.
/// - Scaling (`tick`, every `scaleInterval` while the executor's `maintain` runs): instances up
///   to `min`; one more when the queue's backlog exceeds the free slots; an instance idle for
///   `idleSeconds` is stopped while more than `min` run.
/// - An instance whose process exits is removed at once and replaced on demand; a start that
///   fails fails the waiters only when no other instance is ready or starting.
/// - Health (`tick`): a ready instance is pinged every `timings.healthCheck`; one that fails two
///   pings in a row is killed (its requests fail, retryable, naming the reason) and replaced.
actor InstancePool {
    typealias Phase = ScalingPolicy.Phase

    struct Entry {
        var instance: ModelServerInstance
        var phase: Phase
        var inFlight = 0
        /// On the pool's clock (`timings.clock.uptime`).
        var idleSince: Duration
        /// When the instance was last pinged for health (or became ready), and whether a ping is out.
        var checkedAt: Duration
        var checking = false
        var failedChecks = 0
    }

    let spec: ContainerSpec
    let workdir: String?
    /// Where each instance's log goes (`logs/<endpoint>.<instance>.log`), one writer per index.
    let logDirectory: String?
    let endpointName: String
    private var logs: [Int: ModelLog] = [:]
    let slots: Int
    let limits: InstanceConfig
    let timings: ContainerTimings
    let client: ModelServerClient
    /// Health pings go through a client of their own, so they never queue behind invocations.
    let health: ModelServerClient
    private var entries: [Entry] = []
    private var waiters: [(id: UInt64, continuation: CheckedContinuation<ModelServerInstance, any Error>)] = []
    private var nextWaiter: UInt64 = 0
    private var closed = false
    /// Every instance started and not yet gone, readable without the actor (`running`,
    /// `killAllNow`).
    private nonisolated let live = Mutex<[ModelServerInstance]>([])

    /// Where the servers' process groups are written down (see `ProcessGroupRecord`).
    let processGroups: ProcessGroupRecord?

    init(
        spec: ContainerSpec, endpointName: String = "default", workdir: String? = nil, logDirectory: String? = nil,
        slots: Int, limits: InstanceConfig, timings: ContainerTimings, client: ModelServerClient, health: ModelServerClient? = nil,
        processGroups: ProcessGroupRecord? = nil
    ) {
        self.health = health ?? client
        self.processGroups = processGroups
        self.spec = spec
        self.endpointName = endpointName
        self.workdir = workdir
        self.logDirectory = logDirectory
        self.slots = max(1, slots)
        self.limits = limits
        self.timings = timings
        self.client = client
    }

    /// The time on the pool's clock (`ContainerTimings.clock`): what idle times are measured in.
    nonisolated func now() -> Duration { timings.clock.uptime() }

    /// A ready instance with a slot reserved for the caller, who must `release` it.
    func acquire() async throws -> ModelServerInstance {
        if closed { throw Failure(.modelError, "The model servers are shutting down.", retryable: true) }
        if let index = freeReady() {
            entries[index].inFlight += 1
            return entries[index].instance
        }
        let id = nextWaiter
        nextWaiter += 1
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                    return
                }
                waiters.append((id, continuation))
                startForWaiters()
            }
        } onCancel: {
            Task { await self.cancelWaiter(id) }
        }
    }

    /// Gives back a slot taken by `acquire`.
    func release(_ instance: ModelServerInstance) {
        guard let index = entries.firstIndex(where: { $0.instance === instance }) else { return }
        entries[index].inFlight -= 1
        if entries[index].inFlight == 0 { entries[index].idleSince = now() }
        dispatch()
    }

    /// The indices of the instances ready to serve.
    func readyIndices() -> [Int] {
        entries.filter { $0.phase == .ready }.map(\.instance.index).sorted()
    }

    /// How many instances the pool holds, in any phase (started, even before their process is).
    func instanceCount() -> Int {
        entries.count
    }

    /// The PIDs of the server processes alive now.
    func processIDs() -> [pid_t] {
        entries.compactMap { $0.instance.pid }
    }

    /// One round of scaling (see `ScalingPolicy`); `backlog` is the endpoint's queued requests.
    func tick(backlog: Int, now: Duration? = nil) {
        let now = now ?? self.now()
        guard !closed else { return }
        let policy = ScalingPolicy(limits: limits, slots: slots)
        let seen = entries.map { entry in
            ScalingPolicy.Instance(phase: entry.phase, inFlight: entry.inFlight, idleSince: entry.idleSince)
        }
        let decision = policy.decide(instances: seen, waiting: waiters.count, backlog: backlog, now: now)
        let stopping = decision.stop.map { entries[$0].instance }
        for _ in 0..<decision.start {
            guard start() else { break }
        }
        checkHealth(now: now)
        for instance in stopping {
            guard let index = entries.firstIndex(where: { $0.instance === instance }) else { continue }
            entries[index].phase = .stopping
            Task { [grace = timings.terminationGrace] in await instance.stop(grace: grace) }
        }
    }

    /// Stops taking work, fails the waiters, and stops every instance (SIGTERM, SIGKILL after the
    /// grace period); returns once all are gone.
    func shutdown() async {
        closed = true
        let pending = waiters
        waiters.removeAll()
        for waiter in pending {
            waiter.continuation.resume(throwing: Failure(.modelError, "The model servers are shutting down.", retryable: true))
        }
        for index in entries.indices { entries[index].phase = .stopping }
        let instances = entries.map(\.instance)
        let grace = timings.terminationGrace
        await withTaskGroup(of: Void.self) { group in
            for instance in instances { group.addTask { await instance.stop(grace: grace) } }
        }
    }

    /// Server processes alive now (spawned, not yet reaped).
    nonisolated var running: Int {
        live.withLock { $0.count { $0.pid != nil } }
    }

    /// SIGKILL to every live server's group, without waiting (an executor dropped without shutdown).
    nonisolated func killAllNow() {
        for instance in live.withLock({ $0 }) { instance.terminate(SIGKILL) }
    }

    /// A ready instance with a free slot; instances seen to have exited are dropped on the way
    /// (their exit may not have been reported yet).
    private func freeReady() -> Int? {
        entries.removeAll { $0.phase == .ready && $0.instance.hasExited }
        return entries.indices.first { entries[$0].phase == .ready && entries[$0].inFlight < slots }
    }

    /// Starts instances while waiters outnumber the slots of those already starting.
    private func startForWaiters() {
        while !closed,
            waiters.count > entries.count(where: { $0.phase == .starting }) * slots,
            entries.count(where: { $0.phase != .stopping }) < limits.max
        {
            guard start() else { break }
        }
    }

    /// Hands free slots to waiters, oldest first.
    private func dispatch() {
        while !waiters.isEmpty, let index = freeReady() {
            entries[index].inFlight += 1
            waiters.removeFirst().continuation.resume(returning: entries[index].instance)
        }
    }

    private func cancelWaiter(_ id: UInt64) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume(throwing: CancellationError())
    }

    /// Pings the ready instances that are due; see `healthChecked`.
    private func checkHealth(now: Duration) {
        let interval = timings.healthCheck
        for index in entries.indices {
            let entry = entries[index]
            guard entry.phase == .ready, !entry.checking, now - entry.checkedAt >= interval else { continue }
            entries[index].checking = true
            let instance = entry.instance
            let health = self.health
            Task {
                let healthy = await health.ping(instance.base, timeout: min(interval, .seconds(10)))
                await self.healthChecked(instance, healthy: healthy)
            }
        }
    }

    /// A ping's answer: two failures in a row (four while the instance is serving requests: a
    /// busy server may be slow to answer), and the instance is killed and replaced.
    private func healthChecked(_ instance: ModelServerInstance, healthy: Bool) {
        guard let index = entries.firstIndex(where: { $0.instance === instance }) else { return }
        entries[index].checking = false
        entries[index].checkedAt = now()
        entries[index].failedChecks = healthy ? 0 : entries[index].failedChecks + 1
        let allowed = entries[index].inFlight > 0 ? 4 : 2
        guard entries[index].failedChecks >= allowed, entries[index].phase == .ready, !closed else { return }
        entries[index].phase = .stopping
        instance.markUnhealthy(after: timings.healthCheck * 2)
        // It does not answer: no grace. Its requests fail when their connections close.
        Task { await instance.stop(grace: .zero) }
        var live = entries.count { $0.phase != .stopping }
        while live < limits.min, start() {
            live += 1
        }
        startForWaiters()
    }

    /// Writes out what the instances' logs still hold (at shutdown).
    func flushLogs() {
        for log in logs.values { log.flush() }
    }

    /// The log of instance `index`, made once.
    private func log(for index: Int) -> ModelLog? {
        guard let logDirectory else { return nil }
        if let log = logs[index] { return log }
        let log = ModelLog(path: ModelLog.path(directory: logDirectory, endpoint: endpointName, instance: index))
        logs[index] = log
        return log
    }

    /// Starts an instance on the lowest free index below `instances.max` (port `spec.port +
    /// index`, its own safe-port range); false when every index is still held, by instances
    /// being stopped (their exit starts the next one).
    @discardableResult
    private func start() -> Bool {
        let used = Set(entries.map(\.instance.index))
        guard let index = (0..<limits.max).first(where: { !used.contains($0) }) else { return false }
        let instance = ModelServerInstance(index: index, spec: spec, workdir: workdir, log: log(for: index), processGroups: processGroups)
        entries.append(Entry(instance: instance, phase: .starting, idleSince: now(), checkedAt: now()))
        live.withLock { $0.append(instance) }
        Task {
            do {
                try await instance.launch { [weak self] instance in
                    guard let self else { return }
                    Task { await self.exited(instance) }
                }
                try await instance.waitUntilReady(client: client, timeout: timings.startupTimeout, interval: timings.pingInterval)
                ready(instance)
            } catch {
                let failure = error as? Failure
                    ?? Failure(.modelError, "The model server could not be started: \(error).", retryable: true)
                await startFailed(instance, failure)
            }
        }
        return true
    }

    private func ready(_ instance: ModelServerInstance) {
        guard let index = entries.firstIndex(where: { $0.instance === instance }) else { return }
        if entries[index].phase == .starting {
            entries[index].phase = .ready
            entries[index].idleSince = now()
            entries[index].checkedAt = now()
        }
        dispatch()
    }

    private func startFailed(_ instance: ModelServerInstance, _ failure: Failure) async {
        entries.removeAll { $0.instance === instance }
        if !entries.contains(where: { $0.phase != .stopping }) {
            let pending = waiters
            waiters.removeAll()
            for waiter in pending { waiter.continuation.resume(throwing: failure) }
        } else {
            startForWaiters()
        }
        await instance.stop(grace: .seconds(1))
        live.withLock { $0.removeAll { $0 === instance } }
    }

    /// The instance's process exited: it serves no more, and waiters may need a new one.
    private func exited(_ instance: ModelServerInstance) {
        live.withLock { $0.removeAll { $0 === instance } }
        // A server that exits while starting is the start's failure to report (`startFailed`).
        guard let index = entries.firstIndex(where: { $0.instance === instance }), entries[index].phase != .starting else { return }
        entries.remove(at: index)
        startForWaiters()
    }
}
