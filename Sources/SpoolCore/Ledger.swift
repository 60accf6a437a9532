import Foundation

/// What every process may read of the ledger: requests, the queue's counts, metrics.
///
/// Readers (`spool status`, `ls`, `stats`, `wait`, `cat`) open a reader and never change the
/// store's schema. Every method is safe while other processes write.
public protocol LedgerReader: Sendable {
    func request(id: String) async throws -> InferenceRequest?

    /// Requests matching `query`, newest first.
    func list(_ query: LedgerQuery) async throws -> [InferenceRequest]

    /// Finished requests whose finish time is before `cutoff`, earliest finish first, at most
    /// `limit`: what retention and `spool gc` remove. Served by an index on the finish time, so a
    /// batch costs the same however many requests the ledger holds.
    func finished(before cutoff: Date, limit: Int) async throws -> [InferenceRequest]

    /// The `limit` most recently finished requests that did not succeed (failed, expired or
    /// cancelled), latest first: the status page's failures. Its cost does not grow with history.
    func latestFailures(limit: Int) async throws -> [InferenceRequest]

    /// Counts by state and the oldest queued arrival, per endpoint. Its cost does not grow with
    /// the finished requests the ledger holds (it runs on every `/ping` and admission).
    func queueStats() async throws -> [String: QueueStats]

    /// The owners with requests in `running`, for the rescuer to check which are alive.
    func runningOwners() async throws -> Set<String>

    /// Of the given claim tokens, those that some request carries. A token found on disk and
    /// not here is a claim its process made but never recorded.
    func recordedClaimTokens(among tokens: [String]) async throws -> Set<String>

    /// Finished requests whose notification has not been written yet, oldest first.
    func unnotified(limit: Int) async throws -> [InferenceRequest]

    // MARK: Metrics (`spool stats`, `GET /metrics`)

    /// Every counter: endpoint → counter name → value.
    func counters() async throws -> [String: [String: Int]]

    /// The times of the `limit` most recently finished requests of `endpoint` that ran
    /// (succeeded or failed after starting), most recent first: the latency window of `spool stats`.
    /// With `since`, only those finished at or after it (the status page's last hour).
    func latencySamples(endpoint: String, since: Date?, limit: Int) async throws -> [LatencySample]
}

extension LedgerReader {
    public func latencySamples(endpoint: String, limit: Int) async throws -> [LatencySample] {
        try await latencySamples(endpoint: endpoint, since: nil, limit: limit)
    }
}

/// The durable record of every request: the queue, its claims, and its history.
///
/// SQLite is the embedded implementation; a PostgreSQL one shares this protocol and the
/// conformance suite (`Tests/SpoolLedgerConformance`). Every method is safe to call from
/// several processes sharing one ledger: a request is claimed by exactly one caller. Nothing
/// here is particular to one database: failures are `LedgerError`s, times are given by the
/// caller, and the driver decides how to make a claim cheap.
public protocol Ledger: LedgerReader {
    /// Records new requests, all in one transaction (a burst of drops costs one write). A request
    /// given an `initialFailure` is recorded as already `failed` (bad metadata, payload too large)
    /// so that it has a row, a marker and an event like any other. Returns, in the order given,
    /// each stored request, or `LedgerError.duplicateInferenceID` for one whose id is taken (the
    /// others are recorded all the same).
    func admit(_ admissions: [Admission]) async throws -> [Result<InferenceRequest, LedgerError>]

    /// Expires queued requests past their TTL, then claims the oldest queued request of one of
    /// `endpoints` for `owner` (state `running`, one more attempt). One statement claims.
    ///
    /// With `batch`, further queued requests of at most `batch.maxBytes` each are claimed in the
    /// same statement, up to `batch.more`, in arrival order, when the first one is that small
    /// too: a worker running small requests back to back then pays one write for several.
    func claimNext(endpoints: [String], owner: String, now: Date, batch: ClaimBatch) async throws -> ClaimResult

    /// Records the bytes consumed so far. Returns false when the request is no longer running
    /// for `owner` (cancelled, or taken away): the caller should stop the attempt.
    func recordProgress(id: String, owner: String, bytes: Int64) async throws -> Bool

    /// Ends the current attempts of requests `owner` is running, all in one transaction (group
    /// commit: a busy worker pool finishes many requests per write). A retryable failure with
    /// attempts left goes back to the queue. Returns, in the order given, each request as it now
    /// is, or nil when it was no longer running for `owner`.
    func finish(_ attempts: [FinishedAttempt], owner: String, now: Date) async throws -> [InferenceRequest?]

    /// Gives the requests `owner` is running back to the queue without using their attempt
    /// (graceful shutdown, or a rescue of a dead owner). Returns how many.
    @discardableResult
    func requeue(owner: String) async throws -> Int

    /// Cancels a queued or running request. Returns the updated request, or nil if unknown.
    /// - Throws: `LedgerError.conflict` when it already finished.
    func cancel(id: String, now: Date) async throws -> InferenceRequest?

    /// Sends a failed, expired or cancelled request back to the queue.
    /// - Throws: `LedgerError.conflict` when it is not in such a state.
    func retry(id: String, now: Date) async throws -> InferenceRequest?

    func markNotified(ids: [String]) async throws

    /// Deletes the finished requests among `ids` (for retention and `spool gc`); queued and
    /// running ones stay. Returns how many were deleted.
    @discardableResult
    func delete(ids: [String]) async throws -> Int

    /// Adds `amount` to the named counter of `endpoint` (created at 0), such as
    /// `NotificationFailures`. Counters survive restarts and are shared by every process.
    func incrementCounter(_ name: String, endpoint: String, by amount: Int) async throws
}

/// A ledger that also keeps the liveness of the processes sharing it (PostgreSQL, whose hosts
/// cannot see one another's lock files): each process holds a lease it renews, and a lapsed
/// lease lets any live process take the owner's work over. Times come from the database's clock.
///
/// With such a ledger the engine finishes ledger-first (a process that lost its lease never
/// publishes an output: its `finish` returns nil) and one process at a time, the publisher,
/// writes events and sends notifications for the whole cluster.
public protocol LeasingLedger: Ledger {
    /// How long a lease lasts unless renewed.
    var leaseDuration: Duration { get }

    /// Takes or renews `owner`'s lease for `leaseDuration`. Returns whether the owner held a
    /// lease that had not lapsed: false on the first call, and after a lapse (the owner's running
    /// requests may have been taken over; its attempts' `finish` will say so).
    @discardableResult
    func renewLease(owner: String) async throws -> Bool

    /// Ends `owner`'s lease (a graceful stop, once its requests went back to the queue).
    func releaseLease(owner: String) async throws

    /// The owners whose lease has not lapsed.
    func liveOwners() async throws -> Set<String>

    /// When `owner`'s lease has lapsed or it holds none: gives its running requests back to the
    /// queue without using their attempt and ends its lease, in one transaction, and returns how
    /// many. Nil, and nothing changed, when the owner is alive.
    func rescue(owner: String) async throws -> Int?

    /// Runs `body` while this process is the cluster's only publisher: waits for the role (held
    /// by one process at a time, released when it dies) until `givenUp` says to stop waiting,
    /// and cancels `body` if the role is lost. `body` gets a check to call before each thing it
    /// publishes: false once the role may have passed to another process. Returns when `body`
    /// returns, when waiting is given up, or when the task is cancelled.
    func asPublisher(
        givenUp: @escaping @Sendable () -> Bool, _ body: @escaping @Sendable (_ holding: @escaping @Sendable () -> Bool) async throws -> Void
    ) async throws

    /// Calls `queued` with the endpoint whenever any process of the cluster queues requests
    /// (at most once per endpoint per 100 ms), until the task is cancelled; a lost connection is
    /// listened on again. Idle workers poll all the same: this only wakes them sooner.
    func listenForQueued(_ queued: @escaping @Sendable (String) -> Void) async
}

/// A request to record, for `Ledger.admit`.
public struct Admission: Sendable {
    public var request: InferenceRequest
    public var initialFailure: Failure?

    public init(_ request: InferenceRequest, initialFailure: Failure? = nil) {
        self.request = request
        self.initialFailure = initialFailure
    }
}

/// How one attempt ended, for `Ledger.finish`.
public struct FinishedAttempt: Sendable {
    public var id: String
    public var result: AttemptResult

    public init(id: String, result: AttemptResult) {
        self.id = id
        self.result = result
    }
}

extension Ledger {
    /// Claims the oldest queued request of `endpoints` (see the requirement).
    public func claimNext(endpoints: [String], owner: String, now: Date) async throws -> ClaimResult {
        try await claimNext(endpoints: endpoints, owner: owner, now: now, batch: .single)
    }

    /// Records one new request.
    /// - Throws: `LedgerError.duplicateInferenceID` when the id is taken.
    public func admit(_ request: InferenceRequest, initialFailure: Failure?) async throws -> InferenceRequest {
        guard let result = try await admit([Admission(request, initialFailure: initialFailure)]).first else {
            throw LedgerError.conflict("admit returned no result")
        }
        return try result.get()
    }

    /// Ends the current attempt of one request `owner` is running; nil when it was no longer
    /// running for `owner`.
    public func finish(id: String, owner: String, result: AttemptResult, now: Date) async throws -> InferenceRequest? {
        try await finish([FinishedAttempt(id: id, result: result)], owner: owner, now: now).first ?? nil
    }
}

/// When one finished request was received, started and finished (for latency percentiles).
public struct LatencySample: Sendable, Equatable {
    public var receivedAt: Date
    public var startedAt: Date
    public var finishedAt: Date

    public init(receivedAt: Date, startedAt: Date, finishedAt: Date) {
        self.receivedAt = receivedAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }
}

/// How many more small requests `claimNext` may claim along with the first.
public struct ClaimBatch: Sendable, Equatable {
    /// Further requests to claim, besides the first.
    public var more: Int
    /// The largest payload a further request (and the first, for there to be any) may have.
    public var maxBytes: Int64

    public init(more: Int, maxBytes: Int64) {
        self.more = Swift.max(0, more)
        self.maxBytes = maxBytes
    }

    /// One request at a time.
    public static let single = ClaimBatch(more: 0, maxBytes: 0)
}

/// What `claimNext` did.
public struct ClaimResult: Sendable {
    /// The request now running for the caller, if one was queued.
    public var claimed: InferenceRequest? { batch.first }
    /// Every request claimed, oldest first (more than one only with a `ClaimBatch`).
    public var batch: [InferenceRequest]
    /// Requests the call moved from `queued` to `expired`; their markers are the caller's to write.
    public var expired: [InferenceRequest]

    public init(claimed: InferenceRequest?, expired: [InferenceRequest]) {
        self.init(batch: claimed.map { [$0] } ?? [], expired: expired)
    }

    public init(batch: [InferenceRequest], expired: [InferenceRequest]) {
        self.batch = batch
        self.expired = expired
    }
}

/// How an attempt ended.
public enum AttemptResult: Sendable, Equatable {
    case succeeded
    case failed(Failure)
}

/// A filter for `Ledger.list`.
public struct LedgerQuery: Sendable {
    public var states: [RequestState]?
    public var endpoint: String?
    public var limit: Int

    public init(states: [RequestState]? = nil, endpoint: String? = nil, limit: Int = 100) {
        self.states = states
        self.endpoint = endpoint
        self.limit = limit
    }
}

/// One endpoint's queue at a glance.
public struct QueueStats: Sendable, Equatable, Codable {
    public var counts: [RequestState: Int]
    /// Arrival time of the oldest queued request.
    public var oldestQueuedAt: Date?

    public init(counts: [RequestState: Int] = [:], oldestQueuedAt: Date? = nil) {
        self.counts = counts
        self.oldestQueuedAt = oldestQueuedAt
    }

    public func count(_ state: RequestState) -> Int { counts[state] ?? 0 }
}

/// Errors a ledger reports that callers act on.
public enum LedgerError: Error, Equatable, CustomStringConvertible {
    case duplicateInferenceID(String)
    case conflict(String)
    /// The store failed; `failure` says how, as far as a caller may act on it, and `message`
    /// is the driver's own account.
    case storage(StorageFailure, message: String)

    public var description: String {
        switch self {
        case .duplicateInferenceID(let id): "InferenceId \(id) is already used"
        case .conflict(let reason): reason
        case .storage(let failure, let message): "ledger \(failure.rawValue): \(message)"
        }
    }
}

/// How a ledger's store failed, whatever the database.
public enum StorageFailure: String, Sendable, Equatable {
    /// Another process held a lock longer than the ledger waits: try again later.
    case busy
    /// The disk (or the database's quota) is full: try again once there is space.
    case full
    /// The store cannot be reached or opened (permissions, I/O errors, a server down).
    case unavailable
    /// The store holds something the ledger cannot read (a damaged file, a foreign schema).
    case corrupt
    /// Anything else.
    case other
}
