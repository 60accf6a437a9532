import SpoolCore

/// Waits until requests have finished: what `spool wait` does, polling the ledger (a reader
/// suffices) every `interval` of `clock` until every request is terminal or `timeout` passes.
///
/// With a leasing ledger (PostgreSQL) a result is recorded before its output is renamed into
/// place (see docs/crash-safety.md); a request counts as finished there once the cluster's
/// publisher has published it (`publishedOnly`).
public struct RequestWaiter: Sendable {
    public let ledger: any LedgerReader
    public let publishedOnly: Bool
    public let clock: any Clock<Duration>
    public let interval: Duration

    /// How the wait ended. `requests` holds each id's latest row, in the order asked.
    public enum Outcome: Sendable {
        case finished(_ requests: [InferenceRequest])
        case timedOut(_ requests: [InferenceRequest])
    }

    /// A waited-for id the ledger does not know.
    public struct UnknownRequest: Error, CustomStringConvertible {
        public let id: String
        public init(id: String) { self.id = id }
        public var description: String { "unknown inference id \(id)" }
    }

    public init(ledger: any LedgerReader, publishedOnly: Bool, clock: any Clock<Duration> = ContinuousClock(), interval: Duration = .milliseconds(50)) {
        self.ledger = ledger
        self.publishedOnly = publishedOnly
        self.clock = clock
        self.interval = interval
    }

    /// Whether `request` is finished for a waiter.
    public func isDone(_ request: InferenceRequest) -> Bool {
        request.state.isTerminal && (!publishedOnly || request.notified)
    }

    /// Waits for `ids` (repeats are waited for once). `saw` is told every row read, `round` the
    /// count finished after each poll (for progress displays).
    public func wait(
        for ids: [String], timeout: Duration?,
        saw: (InferenceRequest) -> Void = { _ in }, round: (_ finished: Int, _ total: Int) -> Void = { _, _ in }
    ) async throws -> Outcome {
        try await wait(on: clock, for: ids, timeout: timeout, saw: saw, round: round)
    }

    private func wait<C: Clock<Duration>>(
        on clock: C, for ids: [String], timeout: Duration?,
        saw: (InferenceRequest) -> Void, round: (_ finished: Int, _ total: Int) -> Void
    ) async throws -> Outcome {
        let wanted = Set(ids)
        let started = clock.now
        var latest: [String: InferenceRequest] = [:]
        var finished = Set<String>()
        while true {
            for id in ids where !finished.contains(id) {
                guard let request = try await ledger.request(id: id) else { throw UnknownRequest(id: id) }
                saw(request)
                latest[id] = request
                if isDone(request) { finished.insert(id) }
            }
            round(finished.count, wanted.count)
            let rows = ids.compactMap { latest[$0] }
            if finished.count == wanted.count { return .finished(rows) }
            if let timeout, started.duration(to: clock.now) >= timeout { return .timedOut(rows) }
            try await clock.sleep(for: interval, tolerance: nil)
        }
    }
}
