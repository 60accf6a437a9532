import Foundation
import Logging
import ServiceLifecycle
import SpoolCore
import Synchronization

/// Delivers each finished request's event to its endpoint's `on_success`/`on_error` hook and
/// `webhook` (the event JSON of `events.jsonl`), off the request path.
///
/// `published` only enqueues: jobs wait in a bounded in-memory queue that `run()` drains in the
/// background, at most `Options.maxConcurrentDeliveries` at once, so a slow hook or a dead
/// webhook never holds up the inference queue. A delivery that fails for good (a hook that
/// exits non-zero, times out or cannot start; a webhook still failing after its retries; a job
/// dropped because the queue is full or the notifier stopped) is logged at error level with its
/// InferenceId and counted in the ledger as `NotificationFailures` for its endpoint, so
/// `spool stats` in any process shows it. Nothing is lost silently.
///
/// `events.jsonl` is not the notifier's: `ResultPublisher` writes that line before observers run.
public final class Notifier: PublicationObserver, Service, Sendable {
    /// The counter failed deliveries increment (per endpoint).
    public static let failureCounter = "NotificationFailures"

    /// Bounds and timings; the defaults suit production, tests shorten them.
    public struct Options: Sendable {
        /// A hook running longer is killed (SIGTERM to its process group, SIGKILL 2 s later).
        public var hookTimeout: Duration = .seconds(30)
        /// Waits before the webhook's retries: 5 attempts in all by default.
        public var webhookRetryDelays: [Duration] = [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4)]
        /// One webhook attempt (connect, send, response) taking longer fails.
        public var webhookTimeout: Duration = .seconds(5)
        /// Jobs waiting at most; beyond, new jobs fail at once (and are counted).
        public var queueCapacity = 10_000
        /// Deliveries in progress at once.
        public var maxConcurrentDeliveries = 8
        /// How long `finish` waits for pending deliveries (`spool drain`).
        public var flushTimeout: Duration = .seconds(35)

        public init() {}
    }

    /// One delivery: the event's bytes, and where they go.
    struct Job: Sendable {
        var id: String
        var endpoint: String
        var hook: [String]?
        var webhook: String?
        var body: Data
    }

    let layout: SpoolLayout
    let ledger: any Ledger
    let logger: Logger
    let options: Options
    private let settings: [String: NotificationConfig]
    private let stream: AsyncStream<Job>
    private let continuation: AsyncStream<Job>.Continuation
    /// Jobs enqueued and not yet delivered or failed, by endpoint.
    private let pending = Mutex<[String: Int]>([:])

    public init(layout: SpoolLayout, config: SpoolConfig, ledger: any Ledger, logger: Logger, options: Options = Options()) {
        self.layout = layout
        self.ledger = ledger
        self.logger = logger
        self.options = options
        settings = Dictionary(config.endpoints.map { ($0.name, $0.notifications) }, uniquingKeysWith: { a, _ in a })
        (stream, continuation) = AsyncStream.makeStream(of: Job.self, bufferingPolicy: .bufferingOldest(max(1, options.queueCapacity)))
    }

    /// Whether any endpoint has a hook or a webhook (otherwise the notifier has nothing to do).
    public var hasTargets: Bool {
        settings.values.contains { $0.onSuccess != nil || $0.onError != nil || $0.webhook != nil }
    }

    /// Deliveries waiting or in progress.
    public var pendingCount: Int { pending.withLock { $0.values.reduce(0, +) } }

    /// Queues the event for the endpoint's hook and webhook; returns at once.
    public func published(_ request: InferenceRequest, event: NotificationEvent) async {
        guard let config = settings[request.endpoint] else { return }
        let hook = request.state == .succeeded ? config.onSuccess : config.onError
        guard hook != nil || config.webhook != nil else { return }
        let job = Job(id: request.id, endpoint: request.endpoint, hook: hook, webhook: config.webhook, body: event.jsonLine())
        pending.withLock { $0[job.endpoint, default: 0] += 1 }
        let reason: String
        switch continuation.yield(job) {
        case .enqueued: return
        case .dropped: reason = "the notification queue is full (\(options.queueCapacity) waiting)"
        case .terminated: reason = "the notifier has stopped"
        @unknown default: reason = "the notification could not be queued"
        }
        log(job, reason: reason)
        // Counted here unless the shutdown tally took it first.
        if takePending(job.endpoint) { await count(failures: 1, endpoint: job.endpoint) }
    }

    /// Delivers queued jobs until graceful shutdown; then delivers what is already queued and
    /// returns. Jobs still undelivered when the task is cancelled are counted as failures.
    public func run() async throws {
        await withGracefulShutdownHandler {
            await deliverQueued()
        } onGracefulShutdown: {
            self.continuation.finish()
        }
    }

    /// Stops taking jobs and waits, up to `Options.flushTimeout`, for the queued ones to be
    /// delivered (`run()` must be running). Returns whether everything was delivered in time.
    @discardableResult
    public func finish() async -> Bool {
        continuation.finish()
        let deadline = ContinuousClock.now + options.flushTimeout
        while pendingCount > 0 {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    private func deliverQueued() async {
        await withTaskGroup(of: Void.self) { group in
            var inFlight = 0
            for await job in stream {
                if inFlight >= max(1, options.maxConcurrentDeliveries) {
                    await group.next()
                    inFlight -= 1
                }
                group.addTask { await self.deliver(job) }
                inFlight += 1
            }
        }
        // Cancelled with jobs still queued: they will never be delivered.
        continuation.finish()
        let left = pending.withLock { p in
            defer { p = [:] }
            return p
        }
        for (endpoint, count) in left where count > 0 {
            logger.error("notifications not delivered before shutdown", metadata: [
                "spool.endpoint": "\(endpoint)", "spool.count": "\(count)",
            ])
            await self.count(failures: count, endpoint: endpoint)
        }
    }

    /// Runs the hook and the webhook of one job (each independently), then accounts for it.
    func deliver(_ job: Job) async {
        var failures = 0
        var reasons: [String] = []
        await withTaskGroup(of: String?.self) { group in
            if let hook = job.hook { group.addTask { await self.runHook(hook, job: job) } }
            if let url = job.webhook { group.addTask { await self.postWebhook(url, job: job) } }
            for await reason in group {
                if let reason {
                    failures += 1
                    reasons.append(reason)
                }
            }
        }
        if failures > 0 {
            log(job, reason: reasons.joined(separator: "; "))
            await count(failures: failures, endpoint: job.endpoint)
        }
        // Last, so that `finish()` returns only once the failures are counted.
        _ = takePending(job.endpoint)
    }

    /// Takes one job of `endpoint` off `pending`; false when the shutdown tally already did.
    private func takePending(_ endpoint: String) -> Bool {
        pending.withLock { p in
            guard let n = p[endpoint], n > 0 else { return false }
            p[endpoint] = n == 1 ? nil : n - 1
            return true
        }
    }

    private func log(_ job: Job, reason: String) {
        logger.error("notification failed", metadata: [
            "spool.request.id": "\(job.id)", "spool.endpoint": "\(job.endpoint)", "spool.error": "\(reason)",
        ])
    }

    /// Adds to the endpoint's `NotificationFailures`, outside any cancelled task.
    private func count(failures: Int, endpoint: String) async {
        let ledger = self.ledger, logger = self.logger
        await Task {
            do {
                try await ledger.incrementCounter(Self.failureCounter, endpoint: endpoint, by: failures)
            } catch {
                logger.error("could not count a notification failure", metadata: [
                    "spool.endpoint": "\(endpoint)", "spool.error": "\(error)",
                ])
            }
        }.value
    }
}
