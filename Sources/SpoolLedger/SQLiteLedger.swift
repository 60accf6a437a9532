import Foundation
import GRDB
import SpoolCore
import Synchronization

/// The ledger in one SQLite file (`.spool/ledger.sqlite`), shared by every `spool` process of a
/// spool root: the daemon, a cron `spool drain`, CLI readers.
///
/// The file is opened as a GRDB `DatabasePool` in WAL mode: readers never block the writer and
/// see committed snapshots. Every write runs in an IMMEDIATE transaction, which takes the write
/// lock when it begins, so two processes wait for each other (up to the busy timeout) instead of
/// deadlocking on a lock upgrade. The schema (see `SQLiteLedger+Schema.swift`) refuses rows the
/// request lifecycle could not produce.
///
/// SQLite and GRDB errors stay inside this type: they surface as `LedgerError.storage` with the
/// SQLite primary result code.
public final class SQLiteLedger: Ledger {
    /// How long a statement waits for another process's write lock before failing with
    /// `SQLITE_BUSY` (code 5).
    public static let defaultBusyTimeout: TimeInterval = 30

    private let pool: DatabasePool
    /// The endpoint sets whose last claim found work: their next claim skips the read that spares
    /// idle pollers a write transaction (a busy worker would pay it for nothing).
    let busyEndpoints = Mutex<Set<[String]>>([])
    /// Counts the work of every statement, when the ledger was opened with one (tests).
    private let meter: StatementMeter?

    /// Opens (or creates) the ledger at `path`, creating its parent directories, and brings its
    /// schema up to date. With a `meter`, every statement's work is counted in it.
    ///
    /// With `migrating: false` (readers: `spool status`, `ls`, `stats`, `wait`, `cat`), the file
    /// must exist and its schema must be current: a reader never changes it, and says so when
    /// an older Spool wrote it.
    /// - Throws: `LedgerError.storage` when the file cannot be opened or migrated.
    public init(
        path: String, busyTimeout: TimeInterval = SQLiteLedger.defaultBusyTimeout, meter: StatementMeter? = nil,
        migrating: Bool = true
    ) throws {
        self.meter = meter
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.label = "spool.ledger"
        if let meter {
            configuration.prepareDatabase { db in meter.attach(to: db) }
        }
        // GRDB opens a pool in WAL mode with `PRAGMA synchronous = NORMAL`: durable against
        // application crashes, consistent on power loss, where only the last commits may be lost.
        do {
            if migrating {
                try FileManager.default.createDirectory(
                    at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
                pool = try Self.open(path: path, configuration: configuration, timeout: busyTimeout)
            } else {
                pool = try DatabasePool(path: path, configuration: configuration)
                try Self.waitForSchema(pool, path: path, timeout: min(busyTimeout, 5))
            }
        } catch let error as CocoaError {
            throw LedgerError.storage(
                .unavailable, message: "cannot create the ledger's directory for \(path): \(error.localizedDescription)")
        } catch {
            throw Self.ledgerError(error)
        }
    }

    /// For a reader: returns once the schema is current. A process that has just created the file
    /// may still be migrating it, so it waits up to `timeout` before calling the schema old.
    private static func waitForSchema(_ pool: DatabasePool, path: String, timeout: TimeInterval) throws {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while try !pool.read(migrator.hasCompletedMigrations) {
            guard Date() < deadline else {
                throw LedgerError.storage(
                    .unavailable,
                    message: "the ledger at \(path) was written by an older Spool: `spool serve` or `spool drain` brings it up to date")
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    /// Opens the pool and runs the migrations.
    ///
    /// Processes opening a new file at once race twice. Switching a new file to WAL takes an
    /// exclusive lock by upgrading a shared one, and SQLite answers `SQLITE_BUSY` at once rather
    /// than risk a deadlock in its busy handler: such an open is retried until the busy timeout
    /// has passed. And a migration seen missing by two processes is applied by one; the other
    /// fails to apply it again, and tries again (the next migration may still be missing: each
    /// runs in its own transaction) until all are applied or the busy timeout has passed.
    private static func open(path: String, configuration: Configuration, timeout: TimeInterval) throws -> DatabasePool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while true {
            do {
                let pool = try DatabasePool(path: path, configuration: configuration)
                while true {
                    do {
                        try migrator.migrate(pool)
                        return pool
                    } catch {
                        if try pool.read(migrator.hasCompletedMigrations) { return pool }
                        if Date() >= deadline { throw error }
                        Thread.sleep(forTimeInterval: .random(in: 0.005...0.02))
                    }
                }
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && Date() < deadline {
                Thread.sleep(forTimeInterval: .random(in: 0.005...0.02))
            }
        }
    }

    // MARK: - Database access

    /// Runs `body` in an IMMEDIATE write transaction, committed when `body` returns.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.writeWithoutTransaction { db in
                var result: T?
                try db.inTransaction(.immediate) {
                    result = try body(db)
                    return .commit
                }
                return result!
            }
        } catch {
            throw Self.ledgerError(error)
        }
    }

    /// Runs `body` on a snapshot of the last committed state; it never waits for writers.
    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read(body)
        } catch {
            throw Self.ledgerError(error)
        }
    }

    /// The error a caller of the ledger sees: `LedgerError` as is, cancellation as is, anything
    /// from SQLite or GRDB as `LedgerError.storage`, its kind from the SQLite primary result code
    /// and the code kept in the message.
    static func ledgerError(_ error: any Error) -> any Error {
        switch error {
        case let error as LedgerError:
            error
        case is CancellationError:
            error
        case let error as DatabaseError:
            LedgerError.storage(
                failure(error.resultCode),
                message: "SQLite error \(error.resultCode.rawValue): \(error.message ?? error.description)")
        default:
            LedgerError.storage(.other, message: String(describing: error))
        }
    }

    /// What an SQLite primary result code means to a caller.
    static func failure(_ code: ResultCode) -> StorageFailure {
        switch code.primaryResultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED: .busy
        case .SQLITE_FULL: .full
        case .SQLITE_IOERR, .SQLITE_CANTOPEN, .SQLITE_READONLY, .SQLITE_PERM, .SQLITE_AUTH: .unavailable
        case .SQLITE_CORRUPT, .SQLITE_NOTADB, .SQLITE_MISMATCH, .SQLITE_SCHEMA, .SQLITE_FORMAT: .corrupt
        default: .other
        }
    }

    /// The requests of rows from `statement`, in the order SQLite returned them.
    static func requests(_ db: Database, _ statement: SQL) throws -> [InferenceRequest] {
        let (sql, arguments) = try statement.build(db)
        let prepared = try db.cachedStatement(sql: sql)
        let columns = try RequestColumns.of(prepared)
        var requests: [InferenceRequest] = []
        let rows = try Row.fetchCursor(prepared, arguments: arguments)
        while let row = try rows.next() { requests.append(try InferenceRequest(row: row, columns: columns)) }
        return requests
    }

    /// Runs a write statement through the statement cache (hot paths run thousands a second).
    static func execute(_ db: Database, _ statement: SQL) throws {
        let (sql, arguments) = try statement.build(db)
        try db.cachedStatement(sql: sql).execute(arguments: arguments)
    }

    static func request(_ db: Database, _ statement: SQL) throws -> InferenceRequest? {
        try requests(db, statement).first
    }
}
