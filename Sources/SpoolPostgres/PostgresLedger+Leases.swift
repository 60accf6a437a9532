import Foundation
import Logging
import PostgresNIO
import SpoolCore

/// Liveness in the database: leases, the rescue of lapsed owners, and the publisher role.
extension PostgresLedger: LeasingLedger {
    public var leaseDuration: Duration { leaseLength }

    private var leaseMilliseconds: Int64 {
        let (seconds, attoseconds) = leaseLength.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    @discardableResult
    public func renewLease(owner: String) async throws -> Bool {
        let rows = try await rows("""
            WITH old AS (SELECT expires_at FROM leases WHERE owner = \(owner) FOR UPDATE)
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
            let requeued = try await statements.rows("""
                UPDATE requests
                SET state = 'queued', owner = NULL, started_at = NULL, bytes_processed = 0,
                    attempts = GREATEST(attempts - 1, 0)
                WHERE state = 'running' AND owner = \(owner)
                RETURNING seq
                """).count
            try await statements.run("DELETE FROM leases WHERE owner = \(owner)")
            return requeued
        }
    }

    /// The advisory lock whose holder publishes (`pg_try_advisory_lock`, a session lock: it goes
    /// with the holder's connection, so a process that dies or loses the server gives it up).
    static let publisherLock: Int64 = 0x5370_6F6F_6C50_7562

    public func asPublisher(givenUp: @escaping @Sendable () -> Bool, _ body: @escaping @Sendable () async throws -> Void) async throws {
        let logger = self.logger
        while !Task.isCancelled && !givenUp() {
            do {
                try await client.withConnection { connection in
                    // Wait for the role, asking once a second.
                    while true {
                        try Task.checkCancellation()
                        if givenUp() { return }
                        let got = try await connection.query("SELECT pg_try_advisory_lock(\(Self.publisherLock))", logger: logger)
                            .collect().first?.decode(Bool.self) ?? false
                        if got { break }
                        try await Task.sleep(for: .milliseconds(500))
                    }
                    // Hold it while the connection answers; the body stops when it does not.
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await body() }
                        group.addTask {
                            while true {
                                try await Task.sleep(for: .seconds(2))
                                _ = try await connection.query("SELECT 1", logger: logger).collect()
                            }
                        }
                        defer { group.cancelAll() }
                        _ = try await group.next()
                    }
                    _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.publisherLock))", logger: logger).collect()
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
}
