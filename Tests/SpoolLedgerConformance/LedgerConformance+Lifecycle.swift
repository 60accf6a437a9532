import Foundation
import SpoolCore
import Testing

extension LedgerConformance {
    static let lifecycle: [LedgerCheck] = [
        LedgerCheck("finish with success") { try await $0.finishSucceeded() },
        LedgerCheck("finish with a final failure") { try await $0.finishFailed() },
        LedgerCheck("retryable failures requeue until attempts run out") { try await $0.retryableFailuresRequeue() },
        LedgerCheck("only the owner can finish or report progress") { try await $0.onlyTheOwnerFinishes() },
        LedgerCheck("requeue gives the attempt back") { try await $0.requeueGivesAttemptBack() },
        LedgerCheck("cancel a queued request") { try await $0.cancelQueued() },
        LedgerCheck("cancel a running request") { try await $0.cancelRunning() },
        LedgerCheck("cancel a finished request is a conflict") { try await $0.cancelFinishedConflicts() },
        LedgerCheck("retry requeues failed, expired and cancelled requests") { try await $0.retryRequeues() },
    ]

    func finishSucceeded() async throws {
        let ledger = try await makeLedger()
        try await Self.admit([Self.request("r")], to: ledger)
        _ = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Self.at(1))
        #expect(try await ledger.recordProgress(id: "r", owner: "w", bytes: 512))
        #expect(try await ledger.request(id: "r")?.bytesProcessed == 512)

        let finished = try #require(try await ledger.finish(id: "r", owner: "w", result: .succeeded, now: Self.at(3)))

        #expect(finished.state == .succeeded)
        #expect(finished.finishedAt == Self.at(3))
        #expect(finished.startedAt == Self.at(1))
        #expect(finished.owner == nil)
        #expect(finished.failureCode == nil && finished.failureReason == nil && finished.evidence == nil)
        #expect(finished.bytesProcessed == 512)
        #expect(finished.attempts == 1)
        #expect(try await ledger.request(id: "r") == finished)
        #expect(try await ledger.finish(id: "r", owner: "w", result: .succeeded, now: Self.at(4)) == nil)
        #expect(try await ledger.recordProgress(id: "r", owner: "w", bytes: 1024) == false)
    }

    func finishFailed() async throws {
        let ledger = try await makeLedger()
        try await Self.admit([Self.request("r", maxAttempts: 3)], to: ledger)
        _ = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Self.at(1))
        let evidence = ModelEvidence(exitStatus: 3, tail: "Traceback: boom")
        let failure = Failure(.modelError, "The model exited with status 3.", evidence: evidence, retryable: false)

        let finished = try #require(try await ledger.finish(id: "r", owner: "w", result: .failed(failure), now: Self.at(2)))

        #expect(finished.state == .failed)
        #expect(finished.failureCode == .modelError)
        #expect(finished.failureReason == "The model exited with status 3.")
        #expect(finished.evidence == evidence)
        #expect(finished.finishedAt == Self.at(2))
        #expect(finished.owner == nil)
        #expect(finished.attempts == 1)
        #expect(try await ledger.request(id: "r") == finished)
        #expect(try await Self.drain(ledger).isEmpty)
    }

    func retryableFailuresRequeue() async throws {
        let ledger = try await makeLedger()
        try await Self.admit([Self.request("r", maxAttempts: 2), Self.request("later")], to: ledger)
        let crash = Failure(.modelError, "The model crashed.", evidence: ModelEvidence(signal: 11), retryable: true)

        // First attempt fails retryably: back to the queue, still first in line.
        _ = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Self.at(1))
        let requeued = try #require(try await ledger.finish(id: "r", owner: "w", result: .failed(crash), now: Self.at(2)))
        #expect(requeued.state == .queued)
        #expect(requeued.attempts == 1)
        #expect(requeued.owner == nil)
        #expect(requeued.finishedAt == nil)
        #expect(requeued.failureCode == nil)

        // Second (last) attempt fails the same way: the request fails with the evidence.
        let second = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Self.at(3))
        #expect(second.claimed?.id == "r")
        #expect(second.claimed?.attempts == 2)
        let failed = try #require(try await ledger.finish(id: "r", owner: "w", result: .failed(crash), now: Self.at(4)))
        #expect(failed.state == .failed)
        #expect(failed.attempts == 2)
        #expect(failed.failureCode == .modelError)
        #expect(failed.evidence == ModelEvidence(signal: 11))
        #expect(failed.finishedAt == Self.at(4))
        #expect(try await Self.drain(ledger) == ["later"])
    }

    func onlyTheOwnerFinishes() async throws {
        let ledger = try await makeLedger()
        try await Self.admit([Self.request("r"), Self.request("queued")], to: ledger)
        _ = try await ledger.claimNext(endpoints: ["default"], owner: "alice", now: Self.at(1))

        #expect(try await ledger.finish(id: "r", owner: "bob", result: .succeeded, now: Self.at(2)) == nil)
        #expect(try await ledger.recordProgress(id: "r", owner: "bob", bytes: 10) == false)
        #expect(try await ledger.finish(id: "queued", owner: "alice", result: .succeeded, now: Self.at(2)) == nil)
        #expect(try await ledger.finish(id: "unknown", owner: "alice", result: .succeeded, now: Self.at(2)) == nil)
        let current = try await ledger.request(id: "r")
        #expect(current?.state == .running && current?.owner == "alice" && current?.bytesProcessed == 0)
        #expect(try await ledger.request(id: "queued")?.state == .queued)
        #expect(try await ledger.finish(id: "r", owner: "alice", result: .succeeded, now: Self.at(3))?.state == .succeeded)
    }

    func requeueGivesAttemptBack() async throws {
        let ledger = try await makeLedger()
        try await Self.admit([Self.request("a", ttl: 60), Self.request("b")], to: ledger)
        _ = try await ledger.claimNext(endpoints: ["default"], owner: "dead", now: Self.at(1))
        _ = try await ledger.claimNext(endpoints: ["default"], owner: "alive", now: Self.at(1))
        #expect(try await ledger.recordProgress(id: "a", owner: "dead", bytes: 100))
        #expect(try await ledger.runningOwners() == ["dead", "alive"])

        #expect(try await ledger.requeue(owner: "dead") == 1)

        let requeued = try #require(try await ledger.request(id: "a"))
        #expect(requeued.state == .queued)
        #expect(requeued.attempts == 0)
        #expect(requeued.owner == nil && requeued.startedAt == nil && requeued.bytesProcessed == 0)
        #expect(try await ledger.runningOwners() == ["alive"])
        #expect(try await ledger.requeue(owner: "dead") == 0)
        #expect(try await ledger.finish(id: "a", owner: "dead", result: .succeeded, now: Self.at(2)) == nil)
        // It started in time, so it runs again even long after its TTL, as attempt 1.
        let again = try await ledger.claimNext(endpoints: ["default"], owner: "new", now: Self.at(86_400))
        #expect(again.expired.isEmpty)
        #expect(again.claimed?.id == "a")
        #expect(again.claimed?.attempts == 1)
    }

    func cancelQueued() async throws {
        let ledger = try await makeLedger()
        try await Self.admit([Self.request("r")], to: ledger)

        let cancelled = try #require(try await ledger.cancel(id: "r", now: Self.at(5)))

        #expect(cancelled.state == .cancelled)
        #expect(cancelled.failureCode == .cancelled)
        #expect(cancelled.failureReason?.isEmpty == false)
        #expect(cancelled.finishedAt == Self.at(5))
        #expect(try await ledger.request(id: "r") == cancelled)
        #expect(try await Self.drain(ledger).isEmpty)
        #expect(try await ledger.cancel(id: "unknown", now: Self.at(5)) == nil)
    }

    func cancelRunning() async throws {
        let ledger = try await makeLedger()
        try await Self.admit([Self.request("r")], to: ledger)
        _ = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Self.at(1))

        let cancelled = try #require(try await ledger.cancel(id: "r", now: Self.at(2)))

        #expect(cancelled.state == .cancelled && cancelled.owner == nil && cancelled.finishedAt == Self.at(2))
        #expect(try await ledger.recordProgress(id: "r", owner: "w", bytes: 10) == false)
        #expect(try await ledger.finish(id: "r", owner: "w", result: .succeeded, now: Self.at(3)) == nil)
        #expect(try await ledger.request(id: "r")?.state == .cancelled)
        #expect(try await ledger.runningOwners().isEmpty)
    }

    func cancelFinishedConflicts() async throws {
        let ledger = try await makeLedger()
        try await Self.admit([Self.request("r")], to: ledger)
        _ = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Self.at(1))
        let finished = try await ledger.finish(id: "r", owner: "w", result: .succeeded, now: Self.at(2))

        await #expect { try await ledger.cancel(id: "r", now: Self.at(3)) } throws: { error in
            isConflict(error, mentioning: "succeeded")
        }
        #expect(try await ledger.request(id: "r") == finished)
    }

    func retryRequeues() async throws {
        let ledger = try await makeLedger()
        let failure = Failure(.inputUnreadable, "The input could not be read.")
        try await Self.admit([Self.request("expires", ttl: 60), Self.request("cancels"), Self.request("fails")], to: ledger)
        _ = try await ledger.cancel(id: "cancels", now: Self.at(10))
        let claim100 = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Self.at(100))
        #expect(claim100.expired.map(\.id) == ["expires"])
        #expect(claim100.claimed?.id == "fails")
        let failed = try #require(try await ledger.finish(id: "fails", owner: "w", result: .failed(failure), now: Self.at(101)))
        #expect(failed.attempts == 1)
        try await ledger.markNotified(ids: ["fails", "expires", "cancels"])

        // Retried a day later, each is queued again with a fresh TTL and nothing of its end.
        for id in ["fails", "expires", "cancels"] {
            let retried = try #require(try await ledger.retry(id: id, now: Self.at(86_400)))
            #expect(retried.state == .queued)
            #expect(retried.attempts == 0)
            #expect(retried.finishedAt == nil && retried.startedAt == nil && retried.owner == nil)
            #expect(retried.failureCode == nil && retried.failureReason == nil && retried.evidence == nil)
            #expect(retried.notified == false)
            #expect(retried.receivedAt == Self.t0)
        }
        #expect(try await ledger.request(id: "fails")?.seq == failed.seq)
        let claim = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Self.at(86_450))
        #expect(claim.expired.isEmpty)
        #expect(claim.claimed?.id == "expires")
        #expect(claim.claimed?.attempts == 1)

        await #expect { try await ledger.retry(id: "expires", now: Self.at(86_460)) } throws: { error in
            isConflict(error, mentioning: "running")
        }
        await #expect { try await ledger.retry(id: "cancels", now: Self.at(86_460)) } throws: { error in
            isConflict(error, mentioning: "queued")
        }
        #expect(try await ledger.retry(id: "unknown", now: Self.at(86_460)) == nil)
    }
}
