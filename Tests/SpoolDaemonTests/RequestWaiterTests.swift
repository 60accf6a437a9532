import Foundation
import SpoolCore
import SpoolDaemon
import SpoolLedger
import SpoolLedgerConformance
import SpoolTestSupport
import Synchronization
import Testing

/// `spool wait`'s loop as a library: a real SQLite ledger, a clock the test moves.
@Suite struct RequestWaiterTests {
    typealias C = LedgerConformance

    static func ledger() throws -> (SQLiteLedger, String) {
        let folder = try makeTemporaryDirectory(prefix: "spool-waiter")
        return (try SQLiteLedger(path: folder + "/ledger.sqlite"), folder)
    }

    static func finish(_ id: String, _ result: AttemptResult, in ledger: SQLiteLedger) async throws {
        let claimed = try #require(try await ledger.claimNext(endpoints: ["default"], owner: "w", now: C.at(1)).claimed)
        #expect(claimed.id == id)
        _ = try await ledger.finish(id: id, owner: "w", result: result, now: C.at(2))
    }

    @Test func returnsOnceEveryRequestHasFinishedAndPollsOnTheClock() async throws {
        let (ledger, folder) = try Self.ledger()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try await C.admit([C.request("a"), C.request("b")], to: ledger)
        let clock = ManualClock()
        let waiter = RequestWaiter(ledger: ledger, publishedOnly: false, clock: clock, interval: .milliseconds(50))
        let rounds = Counter()
        let waiting = Task { try await waiter.wait(for: ["a", "b", "a"], timeout: nil, round: { _, _ in rounds.add() }) }

        #expect(await clock.waitForSleepers(), "it polls, then sleeps on the clock")
        try await Self.finish("a", .succeeded, in: ledger)
        clock.advance(by: .milliseconds(50))
        #expect(await clock.waitForSleepers(), "one of two finished: it sleeps again")
        try await Self.finish("b", .failed(Failure(.modelError, "no")), in: ledger)
        clock.advance(by: .milliseconds(50))

        guard case .finished(let rows) = try await waiting.value else { Issue.record("not finished"); return }
        #expect(rows.map(\.id) == ["a", "b", "a"])
        #expect(rows.map(\.state) == [.succeeded, .failed, .succeeded])
        #expect(rounds.value == 3)
    }

    @Test func timesOutOnTheClockWithTheLatestRows() async throws {
        let (ledger, folder) = try Self.ledger()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try await C.admit([C.request("slow")], to: ledger)
        let clock = ManualClock()
        let waiter = RequestWaiter(ledger: ledger, publishedOnly: false, clock: clock, interval: .seconds(1))
        let waiting = Task { try await waiter.wait(for: ["slow"], timeout: .seconds(3)) }
        for _ in 0..<3 {
            #expect(await clock.waitForSleepers())
            clock.advance(by: .seconds(1))
        }
        guard case .timedOut(let rows) = try await waiting.value else { Issue.record("did not time out"); return }
        #expect(rows.map(\.state) == [.queued])
    }

    @Test func anUnknownIdIsAnErrorNamingIt() async throws {
        let (ledger, folder) = try Self.ledger()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let waiter = RequestWaiter(ledger: ledger, publishedOnly: false, clock: ManualClock())
        await #expect(throws: RequestWaiter.UnknownRequest.self) { _ = try await waiter.wait(for: ["nope"], timeout: nil) }
        #expect(RequestWaiter.UnknownRequest(id: "nope").description == "unknown inference id nope")
    }

    @Test func withALeasingLedgerAFinishedRequestCountsOnceItIsPublished() async throws {
        let (ledger, folder) = try Self.ledger()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try await C.admit([C.request("p")], to: ledger)
        try await Self.finish("p", .succeeded, in: ledger)
        let clock = ManualClock()
        let waiter = RequestWaiter(ledger: ledger, publishedOnly: true, clock: clock)
        let waiting = Task { try await waiter.wait(for: ["p"], timeout: nil) }
        #expect(await clock.waitForSleepers(), "succeeded but not yet published: still waiting")
        try await ledger.markNotified(ids: ["p"])
        clock.advance(by: .milliseconds(50))
        guard case .finished(let rows) = try await waiting.value else { Issue.record("not finished"); return }
        #expect(rows.first?.notified == true)
    }
}

/// A count several closures bump.
final class Counter: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
