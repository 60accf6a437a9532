import Foundation
import SpoolCore
import Testing

/// The batch forms of admit, claim and finish (group commit).
extension LedgerConformance {
    static let batches: [LedgerCheck] = [
        LedgerCheck("a batch admit records all but a duplicate id") { try await $0.batchAdmitSkipsOnlyDuplicates() },
        LedgerCheck("a claim batch takes the next small requests in order") { try await $0.claimBatchTakesSmallRequests() },
        LedgerCheck("a claim batch takes a large first request alone") { try await $0.claimBatchLargeFirstAlone() },
        LedgerCheck("a batch finish applies each result") { try await $0.batchFinishAppliesEachResult() },
    ]

    static func sized(_ id: String, _ bytes: Int64) -> InferenceRequest {
        var request = request(id)
        request.payloadBytes = bytes
        return request
    }

    func batchAdmitSkipsOnlyDuplicates() async throws {
        let ledger = try await makeLedger()
        try await Self.admit([Self.request("taken")], to: ledger)
        let failure = Failure(.payloadTooLarge, "Too large.")
        var again = Self.request("taken")
        again.claimToken = "token-again"

        let results = try await ledger.admit([
            Admission(Self.request("a")),
            Admission(again),
            Admission(Self.request("b"), initialFailure: failure),
        ])

        #expect(results.count == 3)
        #expect(try results[0].get().state == .queued)
        #expect(throws: LedgerError.duplicateInferenceID("taken")) { try results[1].get() }
        #expect(try results[2].get().state == .failed)
        #expect(try results[2].get().failureCode == .payloadTooLarge)
        #expect(try results[0].get().seq < results[2].get().seq)
        #expect(try await ledger.request(id: "b")?.state == .failed)
        #expect(try await Self.drain(ledger) == ["taken", "a"])
    }

    func claimBatchTakesSmallRequests() async throws {
        let ledger = try await makeLedger()
        try await Self.admit([
            Self.sized("s1", 10), Self.sized("s2", 10), Self.sized("big", 5000), Self.sized("s3", 10), Self.sized("s4", 10),
        ], to: ledger)

        let claim = try await ledger.claimNext(
            endpoints: ["default"], owner: "w", now: Self.at(1), batch: ClaimBatch(more: 2, maxBytes: 100))

        // The large one is skipped, not claimed: it waits for a worker that takes it alone.
        #expect(claim.batch.map(\.id) == ["s1", "s2", "s3"])
        #expect(claim.claimed?.id == "s1")
        #expect(claim.batch.allSatisfy { $0.state == .running && $0.owner == "w" && $0.attempts == 1 && $0.startedAt == Self.at(1) })
        #expect(try await Self.drain(ledger) == ["big", "s4"])
    }

    func claimBatchLargeFirstAlone() async throws {
        let ledger = try await makeLedger()
        try await Self.admit([Self.sized("big", 5000), Self.sized("s1", 10), Self.sized("s2", 10)], to: ledger)

        let claim = try await ledger.claimNext(
            endpoints: ["default"], owner: "w", now: Self.at(1), batch: ClaimBatch(more: 15, maxBytes: 100))

        #expect(claim.batch.map(\.id) == ["big"])
        let single = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Self.at(1), batch: .single)
        #expect(single.batch.map(\.id) == ["s1"])
        let empty = try await ledger.claimNext(endpoints: ["other"], owner: "w", now: Self.at(1), batch: ClaimBatch(more: 15, maxBytes: 100))
        #expect(empty.batch.isEmpty && empty.claimed == nil)
    }

    func batchFinishAppliesEachResult() async throws {
        let ledger = try await makeLedger()
        try await Self.admit([Self.request("ok"), Self.request("bad"), Self.request("again", maxAttempts: 2), Self.request("other")], to: ledger)
        let claim = try await ledger.claimNext(
            endpoints: ["default"], owner: "w", now: Self.at(1), batch: ClaimBatch(more: 3, maxBytes: 1 << 20))
        #expect(claim.batch.count == 4)
        _ = try await ledger.cancel(id: "other", now: Self.at(2))
        let crash = Failure(.modelError, "The model crashed.", retryable: true)

        let finished = try await ledger.finish([
            FinishedAttempt(id: "ok", result: .succeeded),
            FinishedAttempt(id: "bad", result: .failed(Failure(.modelError, "No."))),
            FinishedAttempt(id: "again", result: .failed(crash)),
            FinishedAttempt(id: "other", result: .succeeded),
        ], owner: "w", now: Self.at(3))

        #expect(finished.map { $0?.state } == [.succeeded, .failed, .queued, nil])
        #expect(try await ledger.request(id: "other")?.state == .cancelled)
        #expect(try await ledger.finish([], owner: "w", now: Self.at(4)).isEmpty)
        #expect(try await Self.drain(ledger) == ["again"])
    }
}
