import Foundation
import SpoolCore
import Testing

extension LedgerConformance {
    static let admission: [LedgerCheck] = [
        LedgerCheck("admit stores every field") { try await $0.admitStoresEveryField() },
        LedgerCheck("admit with a failure records it failed") { try await $0.admitWithFailureRecordsFailed() },
        LedgerCheck("admit refuses a duplicate InferenceId") { try await $0.admitRefusesDuplicateID() },
    ]

    static let claiming: [LedgerCheck] = [
        LedgerCheck("claims FIFO across the given endpoints only") { try await $0.claimsFIFOAcrossEndpoints() },
        LedgerCheck("claim expires queued requests past their TTL") { try await $0.claimExpiresPastTTL() },
    ]

    func admitStoresEveryField() async throws {
        let ledger = try await makeLedger()
        var request = Self.request("r1", endpoint: "resnet", receivedAt: Self.at(0.123), ttl: 120, maxAttempts: 3)
        request.source = .http
        request.payloadBytes = 5_000_000_000
        request.contentType = "application/json"
        request.accept = "text/csv"
        request.customAttributes = "trace=abc; é"
        request.timeoutSeconds = 42

        let stored = try await ledger.admit(request, initialFailure: nil)

        #expect(stored.seq > 0)
        var expected = request
        expected.seq = stored.seq
        #expect(stored == expected)
        #expect(try await ledger.request(id: "r1") == expected)
        #expect(try await ledger.request(id: "missing") == nil)
        let next = try await ledger.admit(Self.request("r2"), initialFailure: nil)
        #expect(next.seq > stored.seq)
        // What admit returns is what a read gives, even for an arrival time finer than the
        // ledger keeps, and for a failure whose evidence is empty.
        let fine = try await ledger.admit(Self.request("r3", receivedAt: Self.at(1.2345678)), initialFailure: nil)
        #expect(try await ledger.request(id: "r3") == fine)
        let bare = try await ledger.admit(
            Self.request("r4", receivedAt: Self.at(2.0004)), initialFailure: Failure(.invalidRequest, "no", evidence: ModelEvidence()))
        #expect(try await ledger.request(id: "r4") == bare)
    }

    func admitWithFailureRecordsFailed() async throws {
        let ledger = try await makeLedger()
        let evidence = ModelEvidence(exitStatus: 2, signal: 9, httpStatus: 413, tail: "too big")
        let failure = Failure(.payloadTooLarge, "The payload is larger than 1 KiB.", evidence: evidence)

        let stored = try await ledger.admit(Self.request("big", receivedAt: Self.at(5)), initialFailure: failure)

        #expect(stored.state == .failed)
        #expect(stored.finishedAt == Self.at(5))
        #expect(stored.failureCode == .payloadTooLarge)
        #expect(stored.failureReason == "The payload is larger than 1 KiB.")
        #expect(stored.evidence == evidence)
        #expect(stored.attempts == 0)
        #expect(stored.owner == nil)
        #expect(try await ledger.request(id: "big") == stored)
        let claim = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Self.at(10))
        #expect(claim.claimed == nil)
        #expect(try await ledger.unnotified(limit: 10).map(\.id) == ["big"])
    }

    func admitRefusesDuplicateID() async throws {
        let ledger = try await makeLedger()
        let first = try await ledger.admit(Self.request("dup"), initialFailure: nil)
        var again = Self.request("dup", endpoint: "other")
        again.claimToken = "another-token"

        await #expect(throws: LedgerError.duplicateInferenceID("dup")) {
            try await ledger.admit(again, initialFailure: nil)
        }
        await #expect(throws: LedgerError.duplicateInferenceID("dup")) {
            try await ledger.admit(again, initialFailure: Failure(.invalidRequest, "bad"))
        }
        #expect(try await ledger.request(id: "dup") == first)
        #expect(try await ledger.list(LedgerQuery()).count == 1)
    }

    func claimsFIFOAcrossEndpoints() async throws {
        let ledger = try await makeLedger()
        try await Self.admit(
            [Self.request("a1", endpoint: "a"), Self.request("b1", endpoint: "b"), Self.request("c1", endpoint: "c"),
             Self.request("a2", endpoint: "a"), Self.request("b2", endpoint: "b")],
            to: ledger)

        let first = try await ledger.claimNext(endpoints: ["a", "b"], owner: "worker-1", now: Self.at(1))
        let claimed = try #require(first.claimed)
        #expect(claimed.id == "a1")
        #expect(claimed.state == .running)
        #expect(claimed.owner == "worker-1")
        #expect(claimed.startedAt == Self.at(1))
        #expect(claimed.attempts == 1)
        #expect(first.expired.isEmpty)
        #expect(try await ledger.request(id: "a1") == claimed)

        #expect(try await Self.drain(ledger, endpoints: ["b", "a"]) == ["b1", "a2", "b2"])
        #expect(try await ledger.request(id: "c1")?.state == .queued)
        #expect(try await Self.drain(ledger, endpoints: ["c", "nothing-here"]) == ["c1"])
        let empty = try await ledger.claimNext(endpoints: ["a", "b", "c"], owner: "w", now: Self.at(2))
        #expect(empty.claimed == nil)
        #expect(empty.expired.isEmpty)
        #expect(try await ledger.claimNext(endpoints: [], owner: "w", now: Self.at(2)).claimed == nil)
    }

    func claimExpiresPastTTL() async throws {
        let ledger = try await makeLedger()
        try await Self.admit(
            [Self.request("old", ttl: 60), Self.request("young", receivedAt: Self.at(10), ttl: 60),
             Self.request("elsewhere", endpoint: "other", ttl: 60),
             Self.request("edge", receivedAt: Self.at(100), ttl: 60)],
            to: ledger)

        // When a worker of "default" claims 65 s after the first arrival…
        let result = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Self.at(65))

        // …"old" (due at 60 s) expires, "young" (due at 70 s) is claimed, "other" is untouched.
        let expired = try #require(result.expired.first)
        #expect(result.expired.count == 1)
        #expect(expired.id == "old")
        #expect(expired.state == .expired)
        #expect(expired.failureCode == .expired)
        #expect(expired.failureReason?.isEmpty == false)
        #expect(expired.finishedAt == Self.at(65))
        #expect(expired.attempts == 0)
        #expect(try await ledger.request(id: "old") == expired)
        #expect(result.claimed?.id == "young")
        #expect(try await ledger.request(id: "elsewhere")?.state == .queued)

        // A request exactly at its TTL is still claimable.
        let edge = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Self.at(160))
        #expect(edge.claimed?.id == "edge")
        #expect(edge.expired.isEmpty)
    }
}
