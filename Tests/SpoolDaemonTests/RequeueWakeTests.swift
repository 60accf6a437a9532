import Foundation
import Logging
import SpoolCore
import SpoolLedger
import SpoolSystem
import SpoolTestSupport
import Testing

@testable import SpoolDaemon

/// A request a retryable failure puts back in the queue wakes a worker for its next attempt once
/// that is recorded, instead of waiting for an idle worker's next look at the ledger.
@Suite(.timeLimit(.minutes(1))) struct RequeueWakeTests {
    @Test func aRetryableFailureRingsForTheNextAttempt() async throws {
        var endpoint = EndpointConfig(name: "default", model: .command(["/bin/false"]))
        endpoint.maxAttempts = 2  // a non-zero exit is retryable: two attempts, then failed
        let path = try makeTemporaryDirectory(prefix: "spool-requeue-wake")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let layout = SpoolLayout(root: path)
        try FileManager.default.createDirectory(atPath: path + "/.spool", withIntermediateDirectories: true)
        let ledger = try SQLiteLedger(path: layout.ledgerPath)
        let engine = try SpoolEngine(
            layout: layout, config: SpoolConfig(endpoints: [endpoint]), ledger: ledger, logger: Logger(label: "test"))
        let bell = try #require(engine.doorbells["default"])

        var metadata = RequestMetadata()
        metadata.inferenceId = "retried"
        _ = try await engine.submit(endpoint: endpoint, metadata: metadata, source: .invoke) { fd, path in
            try SystemCalls.writeAll(fd, "payload", path: path)
        }
        #expect(bell.rings == 1, "admission rang once")
        await engine.runWorker(endpoint: "default", untilIdle: true)  // returns once its attempt is committed
        let requeued = try #require(try await ledger.request(id: "retried"))
        #expect(requeued.state == .queued && requeued.attempts == 1, "\(requeued.state) after \(requeued.attempts) attempts")
        #expect(bell.rings == 2, "the requeue rang for the next attempt once it was recorded")

        await engine.runWorker(endpoint: "default", untilIdle: true)
        await engine.publisher.flush()
        let failed = try #require(try await ledger.request(id: "retried"))
        #expect(failed.state == .failed && failed.attempts == 2, "\(failed.state) after \(failed.attempts) attempts")
        #expect(bell.rings == 2, "a final failure does not ring")
    }
}
