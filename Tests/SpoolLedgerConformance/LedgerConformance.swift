import Foundation
import SpoolCore
import Testing

/// One behaviour every `Ledger` must have. A driver's test suite runs all of
/// `LedgerConformance.checks` as one parameterized test.
public struct LedgerCheck: Sendable, CustomTestStringConvertible {
    public let name: String
    public let run: @Sendable (LedgerConformance) async throws -> Void

    init(_ name: String, _ run: @escaping @Sendable (LedgerConformance) async throws -> Void) {
        self.name = name
        self.run = run
    }

    public var testDescription: String { name }
}

/// The ledger conformance suite, written against `any Ledger` only, in a test-support target of
/// its own so that every driver's tests run it: `SpoolLedgerTests` on SQLite files, and any
/// later driver on its own store.
///
/// `makeLedger` opens a new handle on one empty store each time it is called, as another
/// process would: the concurrency check opens two. Time is injected (`t0` plus seconds); no
/// check sleeps.
public struct LedgerConformance: Sendable {
    let makeLedger: @Sendable () async throws -> any Ledger

    /// - Parameter makeLedger: opens a new handle on one empty store each time it is called.
    public init(makeLedger: @escaping @Sendable () async throws -> any Ledger) {
        self.makeLedger = makeLedger
    }

    public static let checks: [LedgerCheck] = admission + claiming + batches + lifecycle + queries + [
        LedgerCheck("two handles claim every request exactly once") { try await $0.twoHandlesClaimEachRequestOnce() },
    ]

    /// A fixed, whole-second start time.
    public static let t0 = Date(timeIntervalSince1970: 1_750_000_000)

    public static func at(_ seconds: Double) -> Date { t0.addingTimeInterval(seconds) }

    /// A queued request as intake would admit it.
    public static func request(
        _ id: String, endpoint: String = "default", receivedAt: Date = t0, ttl: Int = 3600, maxAttempts: Int = 1
    ) -> InferenceRequest {
        InferenceRequest(
            id: id, endpoint: endpoint, source: .drop, inputPath: "in/\(id).json", claimToken: "token-\(id)",
            payloadBytes: 1024, ttlSeconds: ttl, timeoutSeconds: 900, maxAttempts: maxAttempts,
            receivedAt: receivedAt, outputLocation: "outputs/in/\(id).json.out",
            failureLocation: "errors/in/\(id).json.error.json")
    }

    /// Admits the requests in order and returns them as stored.
    @discardableResult
    public static func admit(_ requests: [InferenceRequest], to ledger: any Ledger) async throws -> [InferenceRequest] {
        var stored: [InferenceRequest] = []
        for request in requests {
            stored.append(try await ledger.admit(request, initialFailure: nil))
        }
        return stored
    }

    /// Claims until the queue of `endpoints` is empty; returns the claimed ids in order.
    public static func drain(_ ledger: any Ledger, endpoints: [String] = ["default"], owner: String = "w", now: Date = t0) async throws -> [String] {
        var ids: [String] = []
        while let claimed = try await ledger.claimNext(endpoints: endpoints, owner: owner, now: now).claimed {
            ids.append(claimed.id)
        }
        return ids
    }
}

/// Whether `error` is a `LedgerError.conflict` whose message mentions `word`.
func isConflict(_ error: any Error, mentioning word: String) -> Bool {
    guard case .conflict(let message)? = error as? LedgerError else { return false }
    return message.contains(word)
}
