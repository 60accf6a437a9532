import Foundation
import Glibc
import Logging
import SpoolCore
import SpoolDaemon
import SpoolLedger
import Testing

extension IntegrationTests {
    /// The notifier in-process, with short bounds.
    @Suite(.serialized) struct NotificationDelivery {
        /// A notifier on a fresh root whose default endpoint has `notifications`.
        static func withNotifier(
            _ notifications: NotificationConfig, options: Notifier.Options,
            _ body: (Notifier, SQLiteLedger, String) async throws -> Void
        ) async throws {
            let root = try SpoolRoot()
            let layout = SpoolLayout(root: root.path)
            try Files.makeDirectories(layout.path(SpoolLayout.partialDirectory))
            let ledger = try SQLiteLedger(path: layout.ledgerPath)
            var config = SpoolConfig()
            config.endpoints[0].notifications = notifications
            let notifier = Notifier(layout: layout, config: config, ledger: ledger, logger: Logger(label: "test"), options: options)
            let running = Task { try await notifier.run() }
            defer { running.cancel() }
            try await body(notifier, ledger, root.base)
        }

        static func succeeded(_ id: String) -> (InferenceRequest, NotificationEvent) {
            let request = InferenceRequest(
                id: id, endpoint: "default", source: .invoke, inputPath: id, claimToken: "t-\(id)", payloadBytes: 1,
                ttlSeconds: 60, timeoutSeconds: 60, maxAttempts: 1, state: .succeeded, receivedAt: Date(),
                startedAt: Date(), finishedAt: Date(), outputLocation: "outputs/\(id).out", failureLocation: "errors/\(id).error.json")
            let event = NotificationEvent(
                request: request, inputLocation: "/in/\(id)", outputLocation: "/out/\(id)", failureLocation: "/err/\(id)", eventTime: Date())
            return (request, event)
        }

        @Test("a hook running past its time is killed with its process group, and counted", .timeLimit(.minutes(1)))
        func slowHookIsKilled() async throws {
            var notifications = NotificationConfig()
            let pidFile = "/tmp/spool-it-hookpid-\(getpid())"
            defer { unlink(pidFile) }
            notifications.onSuccess = ["sh", "-c", "sleep 30 & echo $! > \(pidFile); wait"]
            var options = Notifier.Options()
            options.hookTimeout = .seconds(1)
            try await Self.withNotifier(notifications, options: options) { (notifier: Notifier, ledger: SQLiteLedger, _: String) async throws in
                let (request, event) = Self.succeeded("slow")
                let started = ContinuousClock.now
                await notifier.published(request, event: event)
                #expect(await notifier.finish(), "finished within the flush bound")
                let elapsed = ContinuousClock.now - started
                #expect(elapsed >= .seconds(1) && elapsed < .seconds(10), "\(elapsed)")
                #expect(try await ledger.counters() == ["default": [Notifier.failureCounter: 1]])
                let child = try #require(Files.text(pidFile).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
                let deadline = ContinuousClock.now + .seconds(5)
                while Glibc.kill(child, 0) == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                #expect(Glibc.kill(child, 0) != 0, "the hook's background child was killed too")
            }
        }

        @Test("an unreachable webhook is retried on the given back-off, then counted once", .timeLimit(.minutes(1)))
        func unreachableWebhookIsCounted() async throws {
            var notifications = NotificationConfig()
            notifications.webhook = "http://127.0.0.1:9/unreachable"  // discard port: connection refused
            var options = Notifier.Options()
            options.webhookRetryDelays = [.milliseconds(50), .milliseconds(100)]
            options.webhookTimeout = .seconds(1)
            try await Self.withNotifier(notifications, options: options) { (notifier: Notifier, ledger: SQLiteLedger, _: String) async throws in
                let (request, event) = Self.succeeded("nowhere")
                await notifier.published(request, event: event)
                #expect(await notifier.finish())
                #expect(notifier.pendingCount == 0)
                #expect(try await ledger.counters() == ["default": [Notifier.failureCounter: 1]])
            }
        }

        @Test("a full queue fails new jobs at once and counts them", .timeLimit(.minutes(1)))
        func fullQueueCounts() async throws {
            var notifications = NotificationConfig()
            notifications.onSuccess = ["sleep", "0.3"]
            var options = Notifier.Options()
            options.queueCapacity = 1
            options.maxConcurrentDeliveries = 1
            try await Self.withNotifier(notifications, options: options) { (notifier: Notifier, ledger: SQLiteLedger, _: String) async throws in
                for i in 0..<6 {
                    let (request, event) = Self.succeeded("r\(i)")
                    await notifier.published(request, event: event)
                }
                #expect(await notifier.finish())
                let failures = try await ledger.counters()["default"]?[Notifier.failureCounter] ?? 0
                #expect(failures >= 3 && failures <= 5, "6 jobs; at most 1 running, 1 taken and 1 queued: \(failures)")
            }
        }
    }
}
