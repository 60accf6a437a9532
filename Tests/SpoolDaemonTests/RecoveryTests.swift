import Foundation
import Logging
import SpoolCore
@testable import SpoolDaemon
import SpoolLedger
import SpoolSystem
import SpoolTestSupport
import Testing

/// Recovery publishes what a process finished but did not publish, and only that: a live
/// daemon's results are its own to publish for the settle time, even to a recovery asked to
/// settle nothing (`spool drain` at start and end, `serve` at start), or both would log the event.
@Suite(.timeLimit(.minutes(1))) struct RecoveryTests {
    let layout: SpoolLayout
    let ledger: SQLiteLedger
    let config = SpoolConfig(endpoints: [EndpointConfig(name: "default", model: .builtin("echo"))])

    init() throws {
        let path = try makeTemporaryDirectory(prefix: "spool-recovery")
        layout = SpoolLayout(root: path)
        try FileManager.default.createDirectory(atPath: path + "/.spool", withIntermediateDirectories: true)
        ledger = try SQLiteLedger(path: layout.ledgerPath)
    }

    func remove() { try? FileManager.default.removeItem(atPath: layout.root) }

    /// A process on the root that has recorded the success of request "done" and not yet
    /// published it.
    func finisher(now: Date) async throws -> SpoolEngine {
        let finisher = try SpoolEngine(layout: layout, config: config, ledger: ledger, logger: Logger(label: "finisher"))
        var metadata = RequestMetadata()
        metadata.inferenceId = "done"
        _ = try await finisher.submit(endpoint: config.endpoints[0], metadata: metadata, source: .invoke) { fd, _ in
            try SystemCalls.writeAll(fd, "x")
        }
        #expect(try await ledger.claimNext(endpoints: ["default"], owner: finisher.owner, now: now).claimed?.id == "done")
        _ = try await ledger.finish(id: "done", owner: finisher.owner, result: .succeeded, now: now)
        return finisher
    }

    @Test func aLiveFinisherKeepsItsPublicationForTheSettleTimeEvenAgainstAnImpatientRecovery() async throws {
        defer { remove() }
        let clock = ManualClock()
        let time = clock.spoolClock()
        let finisher = try await finisher(now: time.now())
        DaemonStatus.write(for: finisher)  // a daemon: it publishes what it finishes
        let recoverer = try SpoolEngine(layout: layout, config: config, ledger: ledger, logger: Logger(label: "recoverer"), clock: time)
        let events = { (try? readFile(layout.eventsPath)) ?? "" }

        await recoverer.recover(settleSeconds: 0)
        #expect(!events().contains("done"), "published behind the back of its live finisher")
        #expect(try await ledger.request(id: "done")?.notified == false)

        clock.advance(by: .seconds(4))
        await recoverer.recover(settleSeconds: 0)
        #expect(!events().contains("done"), "4 s after it finished")
        clock.advance(by: .seconds(2))
        await recoverer.recover(settleSeconds: 0)
        await recoverer.publisher.flush()
        #expect(events().contains("\"done\""), "after the settle time, anyone publishes it")
        #expect(try await ledger.request(id: "done")?.notified == true)
        withExtendedLifetime(finisher) {}
    }

    @Test func aDeadFinishersResultsArePublishedAtOnce() async throws {
        defer { remove() }
        var finisher: SpoolEngine? = try await finisher(now: Date())
        #expect(finisher != nil)
        finisher = nil  // its lock is released: it is gone

        let recoverer = try SpoolEngine(layout: layout, config: config, ledger: ledger, logger: Logger(label: "recoverer"))
        await recoverer.recover(settleSeconds: 0)
        await recoverer.publisher.flush()
        #expect(((try? readFile(layout.eventsPath)) ?? "").contains("\"done\""))
        #expect(try await ledger.request(id: "done")?.notified == true)
    }
}
