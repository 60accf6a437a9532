import AsyncHTTPClient
import Foundation
import SpoolCore
import Synchronization

/// The timings of a container executor: from the endpoint's `container` settings; tests
/// shorten them.
public struct ContainerTimings: Sendable {
    /// How long a new server has to answer `GET /ping` with 200 (`startup_timeout_seconds`).
    /// Default 600 s.
    public var startupTimeout: Duration = .seconds(600)
    /// How often a running server is pinged (`health_check_seconds`); two failures in a row and
    /// it is replaced. Default 30 s.
    public var healthCheck: Duration = .seconds(30)
    /// How often a starting server is pinged. Default 100 ms.
    public var pingInterval: Duration = .milliseconds(100)
    /// How often the scaler looks at the backlog and idle instances. Default 1 s.
    public var scaleInterval: Duration = .seconds(1)
    /// Between SIGTERM and SIGKILL when a server is stopped. Default 30 s.
    public var terminationGrace: Duration = .seconds(30)
    /// How long a server that exited mid-request is given to be seen exited. Default 500 ms.
    public var exitNoticeWait: Duration = .milliseconds(500)
    /// What the scaler's rounds, idle times and health-check intervals go by (tests move it).
    public var clock: SpoolClock = .system

    public init() {}

    public init(spec: ContainerSpec) {
        startupTimeout = .seconds(spec.startupTimeoutSeconds)
        healthCheck = .seconds(spec.healthCheckSeconds)
    }
}

/// A model served by SageMaker-style containers Spool starts and manages (the SageMaker inference container contract: `serve`, `GET /ping`, `POST /invocations`).
///
/// Each instance is the `serve` argv run with `SAGEMAKER_BIND_TO_PORT = port + index`; it is
/// used once `GET /ping` answers 200, and each invocation is a `POST /invocations` (see
/// `ModelServerClient`). Instances scale between `instances.min` and `instances.max` (see
/// `InstancePool`); with `min = 0` none runs until the first request (a cold start).
///
/// A server that exits while serving a request fails it with a retryable `ModelError` ("the
/// model server exited"), with its exit status and stderr tail, so the ledger retries it if
/// `max_attempts` allows; the next request starts a new instance. `shutdown()` stops every server
/// (SIGTERM to its process group, SIGKILL after `terminationGrace`). An executor released without
/// `shutdown()` kills its servers at once.
public final class ContainerExecutor: ModelExecutor {
    public let spec: ContainerSpec
    let pool: InstancePool
    private let http: HTTPClient
    private let client: ModelServerClient
    /// For health pings only.
    private let healthHTTP: HTTPClient
    private let timings: ContainerTimings
    private let isShutDown = Atomic<Bool>(false)

    /// - Parameters:
    ///   - endpoint: supplies `instances` and `maxConcurrentInvocationsPerInstance`.
    ///   - timings: nil takes them from `spec`.
    ///   - workdir: the servers' working folder (absolute), nil for Spool's own.
    ///   - logDirectory: where `<endpoint>.<instance>.log` files go; nil logs nothing.
    public init(
        spec: ContainerSpec, endpoint: EndpointConfig, timings: ContainerTimings? = nil, workdir: String? = nil,
        logDirectory: String? = nil, processGroups: ProcessGroupRecord? = nil
    ) {
        self.spec = spec
        let timings = timings ?? ContainerTimings(spec: spec)
        self.timings = timings
        http = ModelServerClient.makeHTTPClient(connectionsPerServer: endpoint.maxConcurrentInvocationsPerInstance)
        client = ModelServerClient(http: http)
        healthHTTP = ModelServerClient.makeHTTPClient(connectionsPerServer: 1)
        pool = InstancePool(
            spec: spec, endpointName: endpoint.name, workdir: workdir, logDirectory: logDirectory,
            slots: endpoint.maxConcurrentInvocationsPerInstance, limits: endpoint.instances, timings: timings, client: client,
            health: ModelServerClient(http: healthHTTP), processGroups: processGroups
        )
    }

    deinit {
        pool.killAllNow()
        if !isShutDown.load(ordering: .relaxed) {
            http.shutdown { _ in }
            healthHTTP.shutdown { _ in }
        }
    }

    public var instancesRunning: Int { pool.running }

    /// Brings up `instances.min` servers (without waiting for them).
    public func start(context: ExecutorContext) async throws {
        await pool.tick(backlog: 0)
    }

    /// The scaler: a round every `scaleInterval` on `timings.clock` (instances started on
    /// backlog, stopped when idle, health-checked) until cancelled.
    public func maintain(context: ExecutorContext) async {
        let clock = timings.clock
        while await clock.sleep(for: timings.scaleInterval), !isShutDown.load(ordering: .relaxed) {
            await pool.tick(backlog: await context.backlog())
        }
    }

    public func shutdown() async {
        guard !isShutDown.exchange(true, ordering: .relaxed) else { return }
        await pool.shutdown()
        await pool.flushLogs()
        try? await http.shutdown()
        try? await healthHTTP.shutdown()
    }

    public func invoke(_ invocation: Invocation) async -> AttemptResult {
        let instance: ModelServerInstance
        do {
            instance = try await pool.acquire()
        } catch let failure as Failure {
            return .failed(Task.isCancelled ? CommandExecutor.stopped : failure)
        } catch {
            return .failed(CommandExecutor.stopped)
        }
        let outcome = await client.invoke(invocation, base: instance.base)
        await pool.release(instance)
        guard outcome.connectionFailed, !Task.isCancelled else { return outcome.result }
        // A cut connection usually means the server died: say so, with its status and stderr.
        let deadline = ContinuousClock.now + timings.exitNoticeWait
        while !instance.hasExited && ContinuousClock.now < deadline {
            await ProcessGroup.pause(.milliseconds(10))
        }
        guard instance.hasExited else { return outcome.result }
        await instance.awaitReaped(within: ModelServerInstance.reapPatience)
        let evidence = instance.exitEvidence
        if let silence = instance.replacedAfter {
            return .failed(Failure(
                .modelError, "The model server stopped answering GET /ping (for \(silence)) and was replaced while serving the request.",
                evidence: evidence, retryable: true
            ))
        }
        let how = evidence.signal.map { "was killed by signal \($0)" } ?? "exited with status \(evidence.exitStatus.map(String.init) ?? "unknown")"
        return .failed(Failure(
            .modelError, "The model server \(how) while serving the request.", evidence: evidence, retryable: true
        ))
    }
}

/// A model served by a SageMaker-style server someone else runs at `url` (no lifecycle).
///
/// The server is pinged (`GET /ping` → 200) before use; a healthy answer is trusted for
/// `healthyFor`, and forgotten when a request cannot reach the server. An unreachable or
/// unhealthy server fails the request with a retryable `ModelError`.
public final class URLExecutor: ModelExecutor {
    public let url: String
    private let http: HTTPClient
    private let client: ModelServerClient
    private let healthyUntil = Mutex<ContinuousClock.Instant?>(nil)
    private let healthyFor: Duration
    private let isShutDown = Atomic<Bool>(false)

    public init(url: String, connections: Int = 8, healthyFor: Duration = .seconds(5)) {
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        self.url = base
        self.healthyFor = healthyFor
        http = ModelServerClient.makeHTTPClient(connectionsPerServer: connections)
        client = ModelServerClient(http: http)
    }

    deinit {
        if !isShutDown.load(ordering: .relaxed) { http.shutdown { _ in } }
    }

    public func shutdown() async {
        guard !isShutDown.exchange(true, ordering: .relaxed) else { return }
        try? await http.shutdown()
    }

    public func invoke(_ invocation: Invocation) async -> AttemptResult {
        let trusted = healthyUntil.withLock { $0.map { ContinuousClock.now < $0 } ?? false }
        if !trusted {
            guard await client.ping(url, timeout: .seconds(5)) else {
                if Task.isCancelled { return .failed(CommandExecutor.stopped) }
                return .failed(Failure(.modelError, "The model server at \(url) did not answer GET /ping with 200.", retryable: true))
            }
            healthyUntil.withLock { $0 = .now + healthyFor }
        }
        let outcome = await client.invoke(invocation, base: url)
        if outcome.connectionFailed { healthyUntil.withLock { $0 = nil } }
        return outcome.result
    }
}
