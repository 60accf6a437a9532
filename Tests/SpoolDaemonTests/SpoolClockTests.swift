import Foundation
import Logging
import SpoolCore
import SpoolDaemon
import SpoolLedger
import SpoolSystem
import SpoolTestSupport
import Testing

/// The engine's time is injected: a request's TTL and its invocation timeout are decided by the
/// clock the test moves, so these tests take milliseconds whatever the limits, and would run
/// into their time limit if the engine went by real time.
@Suite(.timeLimit(.minutes(1))) struct SpoolClockTests {
    struct Fixture {
        let clock = ManualClock()
        let layout: SpoolLayout
        let ledger: SQLiteLedger
        let engine: SpoolEngine
        let endpoint: EndpointConfig

        init(_ endpoint: EndpointConfig) throws {
            let path = try makeTemporaryDirectory(prefix: "spool-engine-clock")
            layout = SpoolLayout(root: path)
            try FileManager.default.createDirectory(atPath: path + "/.spool", withIntermediateDirectories: true)
            ledger = try SQLiteLedger(path: layout.ledgerPath)
            engine = try SpoolEngine(
                layout: layout, config: SpoolConfig(endpoints: [endpoint]), ledger: ledger, logger: Logger(label: "test"), clock: clock.spoolClock(wallClockFrom: Date(timeIntervalSince1970: 1_800_000_000)))
            self.endpoint = endpoint
        }

        func submit(_ text: String, id: String) async throws -> InferenceRequest {
            var metadata = RequestMetadata()
            metadata.inferenceId = id
            let request = try await engine.submit(endpoint: endpoint, metadata: metadata, source: .invoke) { fd, path in
                try SystemCalls.writeAll(fd, text, path: path)
            }
            return try #require(request)
        }

        func state(_ id: String) async throws -> InferenceRequest {
            try #require(try await ledger.request(id: id))
        }

        func remove() { try? FileManager.default.removeItem(atPath: layout.root) }
    }

    @Test func aRequestExpiresOnceItsTTLHasPassedOnTheSpoolClock() async throws {
        var endpoint = EndpointConfig(name: "default", model: .builtin("echo"))
        endpoint.requestTTLSeconds = 60
        let f = try Fixture(endpoint)
        defer { f.remove() }
        _ = try await f.submit("old", id: "old")
        f.clock.advance(by: .seconds(30))
        _ = try await f.submit("young", id: "young")
        f.clock.advance(by: .seconds(31))  // "old" is 61 s old, "young" 31 s
        await f.engine.runWorker(endpoint: "default", untilIdle: true)
        await f.engine.publisher.flush()
        let old = try await f.state("old")
        #expect(old.state == .expired && old.failureCode == .expired, "\(old.state) \(old.failureReason ?? "")")
        #expect(try await f.state("young").state == .succeeded)
        #expect(try readFile(f.layout.path("outputs/young.out")) == "young")
        #expect(exists(f.layout.path("errors/old.error.json")), "the expired request has its marker")
    }

    @Test func aModelRunningPastItsTimeoutOnTheSpoolClockFailsWithInvocationTimeout() async throws {
        var endpoint = EndpointConfig(name: "default", model: .builtin("sleep"))
        endpoint.invocationTimeoutSeconds = 3600
        let f = try Fixture(endpoint)
        defer { f.remove() }
        _ = try await f.submit("86000", id: "slow")  // the model sleeps (in real time) almost a day
        let worker = Task { await f.engine.runWorker(endpoint: "default", untilIdle: true) }
        #expect(await f.clock.waitForSleepers(1), "the watchdog sleeps on the engine's clock")
        f.clock.advance(by: .seconds(3599))
        #expect(await f.clock.waitForSleepers(1), "one second short of the timeout, the watchdog goes on watching")
        #expect(try await f.state("slow").state == .running)
        f.clock.advance(by: .seconds(1))
        await worker.value
        let slow = try await f.state("slow")
        #expect(slow.state == .failed && slow.failureCode == .invocationTimeout, "\(slow.state) \(slow.failureReason ?? "")")
        #expect(slow.failureReason?.contains("3600 seconds") == true)
    }
}
