import Foundation
import SpoolCore
import SpoolLedger
import SpoolLedgerConformance
import Testing

/// The counters (migration "v2") and latency samples behind `spool stats`.
@Suite struct SQLiteLedgerMetricsTests {
    typealias Fixtures = LedgerConformance

    @Test func countersAddUpPerEndpointAndSurviveReopening() async throws {
        try await SQLiteLedgerTests.withLedger { ledger, path in
            #expect(try await ledger.counters().isEmpty)
            try await ledger.incrementCounter("NotificationFailures", endpoint: "default", by: 1)
            try await ledger.incrementCounter("NotificationFailures", endpoint: "default", by: 2)
            try await ledger.incrementCounter("NotificationFailures", endpoint: "other", by: 1)
            try await ledger.incrementCounter("Other", endpoint: "default", by: 5)
            let expected = ["default": ["NotificationFailures": 3, "Other": 5], "other": ["NotificationFailures": 1]]
            #expect(try await ledger.counters() == expected)
            #expect(try await SQLiteLedger(path: path).counters() == expected, "another process sees them")
        }
    }

    @Test func latencySamplesAreTheMostRecentlyFinishedRequestsThatRan() async throws {
        try await SQLiteLedgerTests.withLedger { ledger, _ in
            try await Fixtures.admit([Fixtures.request("a"), Fixtures.request("b"), Fixtures.request("c")], to: ledger)
            for (i, id) in ["a", "b"].enumerated() {
                _ = try await ledger.claimNext(endpoints: ["default"], owner: "w", now: Fixtures.at(Double(10 * i + 1)))
                _ = try await ledger.finish(id: id, owner: "w", result: .succeeded, now: Fixtures.at(Double(10 * i + 4)))
            }
            _ = try await ledger.cancel(id: "c", now: Fixtures.at(30))  // never ran: not a sample
            let samples = try await ledger.latencySamples(endpoint: "default", limit: 10)
            #expect(samples.map(\.finishedAt) == [Fixtures.at(14), Fixtures.at(4)])
            #expect(samples.map(\.startedAt) == [Fixtures.at(11), Fixtures.at(1)])
            #expect(try await ledger.latencySamples(endpoint: "default", limit: 1).count == 1)
            #expect(try await ledger.latencySamples(endpoint: "other", limit: 10).isEmpty)
            let latest = try #require(samples.first?.finishedAt)
            #expect(try await ledger.latencySamples(endpoint: "default", since: latest, limit: 10).count == 1, "only those since")
        }
    }
}
