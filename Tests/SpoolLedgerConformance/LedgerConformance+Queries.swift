import Foundation
import SpoolCore
import Testing

extension LedgerConformance {
    static let queries: [LedgerCheck] = [
        LedgerCheck("list filters, newest first") { try await $0.listFiltersNewestFirst() },
        LedgerCheck("finished before a time, earliest first") { try await $0.finishedBeforeEarliestFirst() },
        LedgerCheck("queue stats per endpoint") { try await $0.queueStatsPerEndpoint() },
        LedgerCheck("latest failures, latest first") { try await $0.latestFailuresLatestFirst() },
        LedgerCheck("recorded claim tokens") { try await $0.recordedClaimTokens() },
        LedgerCheck("unnotified and markNotified") { try await $0.unnotifiedAndMarkNotified() },
    ]

    func listFiltersNewestFirst() async throws {
        let ledger = try await makeLedger()
        try await Self.admit(
            [Self.request("a1", endpoint: "a"), Self.request("b1", endpoint: "b"),
             Self.request("a2", endpoint: "a"), Self.request("a3", endpoint: "a")],
            to: ledger)
        _ = try await ledger.cancel(id: "a1", now: Self.at(10))
        _ = try await ledger.cancel(id: "b1", now: Self.at(20))

        #expect(try await ledger.list(LedgerQuery()).map(\.id) == ["a3", "a2", "b1", "a1"])
        #expect(try await ledger.list(LedgerQuery(limit: 2)).map(\.id) == ["a3", "a2"])
        #expect(try await ledger.list(LedgerQuery(endpoint: "a")).map(\.id) == ["a3", "a2", "a1"])
        #expect(try await ledger.list(LedgerQuery(states: [.cancelled])).map(\.id) == ["b1", "a1"])
        #expect(try await ledger.list(LedgerQuery(states: [.queued], endpoint: "b")).isEmpty)
        #expect(try await ledger.list(LedgerQuery(states: [])).isEmpty)
    }

    func finishedBeforeEarliestFirst() async throws {
        let ledger = try await makeLedger()
        try await Self.admit([Self.request("a1"), Self.request("a2"), Self.request("a3"), Self.request("a4")], to: ledger)
        _ = try await ledger.cancel(id: "a3", now: Self.at(10))
        _ = try await ledger.cancel(id: "a1", now: Self.at(20))
        _ = try await ledger.cancel(id: "a2", now: Self.at(30))

        #expect(try await ledger.finished(before: Self.at(10), limit: 10).isEmpty)
        #expect(try await ledger.finished(before: Self.at(20), limit: 10).map(\.id) == ["a3"])
        #expect(try await ledger.finished(before: Self.at(31), limit: 10).map(\.id) == ["a3", "a1", "a2"])
        #expect(try await ledger.finished(before: Self.at(31), limit: 2).map(\.id) == ["a3", "a1"])
    }

    func latestFailuresLatestFirst() async throws {
        let ledger = try await makeLedger()
        #expect(try await ledger.latestFailures(limit: 10).isEmpty)
        try await Self.admit((1...5).map { Self.request("r\($0)") }, to: ledger)
        _ = try await ledger.admit(Self.request("bad"), initialFailure: Failure(.invalidRequest, "Bad metadata."))
        _ = try await ledger.cancel(id: "r1", now: Self.at(10))
        _ = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Self.at(11))
        _ = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Self.at(11))
        _ = try await ledger.finish(id: "r2", owner: "w", result: .succeeded, now: Self.at(20))
        _ = try await ledger.finish(id: "r3", owner: "w", result: .failed(Failure(.modelError, "It broke.")), now: Self.at(30))

        let failures = try await ledger.latestFailures(limit: 10)
        #expect(failures.map(\.id) == ["r3", "r1", "bad"] || failures.map(\.id) == ["bad", "r3", "r1"],
                "failed, cancelled and refused requests, latest finish first; never the succeeded or the queued")
        #expect(failures.first { $0.id == "r3" }?.failureReason == "It broke.")
        #expect(try await ledger.latestFailures(limit: 1).count == 1)
    }

    func queueStatsPerEndpoint() async throws {
        let ledger = try await makeLedger()
        #expect(try await ledger.queueStats().isEmpty)
        try await Self.admit(
            [Self.request("a1", endpoint: "a", receivedAt: Self.at(1)), Self.request("a2", endpoint: "a", receivedAt: Self.at(2)),
             Self.request("a3", endpoint: "a", receivedAt: Self.at(3)), Self.request("b1", endpoint: "b", receivedAt: Self.at(4))],
            to: ledger)
        _ = try await ledger.admit(Self.request("b2", endpoint: "b"), initialFailure: Failure(.invalidRequest, "Bad metadata."))
        _ = try await ledger.claimNext(endpoints: ["a"], owner: "w", now: Self.at(5))
        _ = try await ledger.cancel(id: "b1", now: Self.at(6))

        let stats = try await ledger.queueStats()

        #expect(Set(stats.keys) == ["a", "b"])
        #expect(stats["a"] == QueueStats(counts: [.queued: 2, .running: 1], oldestQueuedAt: Self.at(2)))
        #expect(stats["b"] == QueueStats(counts: [.failed: 1, .cancelled: 1], oldestQueuedAt: nil))
    }

    func recordedClaimTokens() async throws {
        let ledger = try await makeLedger()
        try await Self.admit([Self.request("x"), Self.request("y"), Self.request("z")], to: ledger)
        // More tokens than fit one IN list, known ones spread through, one unknown given twice.
        var tokens = (0..<1200).map { "orphan-\($0)" }
        tokens.insert("token-x", at: 0)
        tokens.insert("token-y", at: 600)
        tokens.append("token-z")
        tokens.append("orphan-7")

        let recorded = try await ledger.recordedClaimTokens(among: tokens)

        #expect(recorded == ["token-x", "token-y", "token-z"])
        #expect(try await ledger.recordedClaimTokens(among: []).isEmpty)
        #expect(try await ledger.recordedClaimTokens(among: ["orphan-1"]).isEmpty)
    }

    func unnotifiedAndMarkNotified() async throws {
        let ledger = try await makeLedger()
        try await Self.admit([Self.request("late"), Self.request("early"), Self.request("running"), Self.request("queued")], to: ledger)
        _ = try await ledger.cancel(id: "late", now: Self.at(30))
        _ = try await ledger.cancel(id: "early", now: Self.at(10))
        _ = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Self.at(5))
        let failed = try await ledger.admit(Self.request("failed", receivedAt: Self.at(20)), initialFailure: Failure(.invalidRequest, "Bad."))
        #expect(failed.notified == false)

        #expect(try await ledger.unnotified(limit: 10).map(\.id) == ["early", "failed", "late"])
        #expect(try await ledger.unnotified(limit: 2).map(\.id) == ["early", "failed"])

        try await ledger.markNotified(ids: ["early", "failed", "unknown"])
        try await ledger.markNotified(ids: [])

        #expect(try await ledger.unnotified(limit: 10).map(\.id) == ["late"])
        #expect(try await ledger.request(id: "early")?.notified == true)
        _ = try await ledger.finish(id: "running", owner: "w", result: .succeeded, now: Self.at(40))
        #expect(try await ledger.unnotified(limit: 10).map(\.id) == ["late", "running"])
    }

    /// Two handles on one store (two processes), four claimers on each: every request is
    /// claimed once and only once.
    func twoHandlesClaimEachRequestOnce() async throws {
        let count = 200
        let first = try await makeLedger()
        let second = try await makeLedger()
        try await Self.admit((0..<count).map { Self.request(String(format: "r%03d", $0)) }, to: first)

        let claims = try await withThrowingTaskGroup(of: [String].self) { group in
            for (index, ledger) in [first, second, first, second, first, second, first, second].enumerated() {
                group.addTask {
                    var ids: [String] = []
                    let owner = "worker-\(index)"
                    while let claimed = try await ledger.claimNext(endpoints: ["default"], owner: owner, now: Self.at(1)).claimed {
                        ids.append(claimed.id)
                        #expect(try await ledger.finish(id: claimed.id, owner: owner, result: .succeeded, now: Self.at(2)) != nil)
                    }
                    return ids
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }

        let all = claims.flatMap { $0 }
        #expect(all.count == count)
        #expect(Set(all).count == count)
        #expect(try await second.queueStats()["default"] == QueueStats(counts: [.succeeded: count]))
    }
}
