import Foundation
import Logging
import PostgresNIO
import SpoolCore
import Synchronization

/// Liveness in the database: leases, the rescue of lapsed owners, and the publisher role.
extension PostgresLedger: LeasingLedger {
    public var leaseDuration: Duration { leaseLength }

    private var leaseMilliseconds: Int64 {
        let (seconds, attoseconds) = leaseLength.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// One statement: `old` reads the lease as the statement's snapshot has it, before the upsert
    /// (a `FOR UPDATE` there would be evaluated after the upsert changed the row, and see none).
    @discardableResult
    public func renewLease(owner: String) async throws -> Bool {
        let rows = try await rows("""
            WITH old AS (SELECT expires_at FROM leases WHERE owner = \(owner))
            INSERT INTO leases (owner, expires_at)
                VALUES (\(owner), clock_timestamp() + \(leaseMilliseconds) * interval '1 millisecond')
            ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at
            RETURNING COALESCE((SELECT expires_at FROM old) > clock_timestamp(), false)
            """)
        return try rows.first?.decode(Bool.self) ?? false
    }

    public func releaseLease(owner: String) async throws {
        _ = try await rows("DELETE FROM leases WHERE owner = \(owner)")
    }

    public func liveOwners() async throws -> Set<String> {
        Set(try await rows("SELECT owner FROM leases WHERE expires_at > clock_timestamp()").map { try $0.decode(String.self) })
    }

    public func rescue(owner: String) async throws -> Int? {
        try await transaction { statements in
            let lease = try await statements.rows("""
                SELECT expires_at > clock_timestamp() FROM leases WHERE owner = \(owner) FOR UPDATE
                """)
            if try lease.first?.decode(Bool.self) == true { return nil }
            let requeued = try await statements.rows(Self.requeueing(owner: owner)).count
            try await statements.run("DELETE FROM leases WHERE owner = \(owner)")
            return requeued
        }
    }

    /// The advisory lock whose holder publishes (`pg_try_advisory_lock`, a session lock: it goes
    /// with the holder's connection, so a process that dies or loses the server gives it up).
    static let publisherLock: Int64 = 0x5370_6F6F_6C50_7562

    /// How long a new publisher waits once it has the role before it publishes: longer than the
    /// previous one takes to notice it lost it (its connection closed, or silent for 3 s), so
    /// two never publish at once.
    static let publisherHandover: Duration = .seconds(4)

    public func asPublisher(
        givenUp: @escaping @Sendable () -> Bool, _ body: @escaping @Sendable (_ holding: @escaping @Sendable () -> Bool) async throws -> Void
    ) async throws {
        let logger = self.logger
        while !Task.isCancelled && !givenUp() {
            do {
                try await client.withConnection { connection in
                    // Wait for the role, asking once a second.
                    while true {
                        try Task.checkCancellation()
                        if givenUp() { return }
                        guard !connection.isClosed else { throw LedgerError.storage(.unavailable, message: "the connection closed") }
                        let got = try await PostgresLedger.withDeadline(.seconds(10)) {
                            try await connection.query("SELECT pg_try_advisory_lock(\(Self.publisherLock))", logger: logger).collect()
                        }.first?.decode(Bool.self) ?? false
                        if got { break }
                        try await Task.sleep(for: .milliseconds(500))
                    }
                    // Hold it while the connection answers; the body stops when it does not.
                    let answered = Stamp()
                    let holding: @Sendable () -> Bool = { !connection.isClosed && answered.age < .seconds(3) }
                    try await Task.sleep(for: Self.publisherHandover)
                    answered.touch()
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await body(holding) }
                        group.addTask {
                            while true {
                                try await Task.sleep(for: .milliseconds(500))
                                guard !connection.isClosed else { throw LedgerError.storage(.unavailable, message: "the publisher's connection closed") }
                                _ = try await PostgresLedger.withDeadline(.seconds(2)) { try await connection.query("SELECT 1", logger: logger).collect() }
                                answered.touch()
                            }
                        }
                        defer { group.cancelAll() }
                        _ = try await group.next()
                    }
                    if !connection.isClosed {
                        _ = try? await PostgresLedger.withDeadline(.seconds(10)) {
                            try await connection.query("SELECT pg_advisory_unlock(\(Self.publisherLock))", logger: logger).collect()
                        }
                    }
                }
                return
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                logger.warning("lost the publisher role; taking it again when the database answers", metadata: ["spool.error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// The channel admissions are announced on; the payload is the endpoint.
    static let queuedChannel = "spool_queued"

    public func listenForQueued(_ queued: @escaping @Sendable (String) -> Void) async {
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: Self.queuedChannel) { notifications in
                        for try await notification in notifications { queued(notification.payload) }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Announces queued requests of `endpoints` to the cluster's idle workers: `NOTIFY` takes a
    /// lock that serializes committing transactions, so each endpoint is announced at most once
    /// per 100 ms — an announcement asked for sooner is sent at the end of that window.
    func announceQueued(_ endpoints: Set<String>) {
        let now = ContinuousClock.now
        for endpoint in endpoints {
            let delay: Duration? = announced.withLock { state in
                var entry = state[endpoint] ?? (last: now - .seconds(1), pending: false)
                defer { state[endpoint] = entry }
                if entry.pending { return nil }
                let due = entry.last + .milliseconds(100)
                if due <= now {
                    entry.last = now
                    return .zero
                }
                entry.pending = true
                entry.last = due
                return due - now
            }
            guard let delay else { continue }
            Task { [self] in
                if delay > .zero {
                    try? await Task.sleep(for: delay)
                    announced.withLock { $0[endpoint]?.pending = false }
                }
                _ = try? await client.query("SELECT pg_notify(\(Self.queuedChannel), \(endpoint))", logger: logger).collect()
            }
        }
    }
}

/// When something last happened (the publisher's connection last answered).
private final class Stamp: Sendable {
    private let instant = Mutex(ContinuousClock.now)

    func touch() { instant.withLock { $0 = ContinuousClock.now } }

    var age: Duration { ContinuousClock.now - instant.withLock { $0 } }
}
