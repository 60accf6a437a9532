import Foundation
import Logging
import PostgresNIO
import SpoolCore
import Synchronization

/// The ledger on PostgreSQL: the `Ledger` protocol, its invariants and its costs as on SQLite,
/// for several hosts that share one spool root and one database.
///
/// A ledger holds a pool of connections (`PostgresClient`) run by a task of its own, started when
/// the ledger opens and cancelled when it is dropped. Opening checks the server with one
/// connection first, so a bad URL, an unreachable server, wrong credentials or a missing database
/// fail at once with one clear line instead of the pool's silent retries.
///
/// Times are whole milliseconds since 1970 (`BIGINT`), as on SQLite: the caller gives them, so
/// the conformance suite's injected clock holds for both drivers.
public final class PostgresLedger: Ledger, Sendable {
    let client: PostgresClient
    let logger: Logger
    /// How long a process's lease lasts unless renewed.
    let leaseLength: Duration
    private let running: Task<Void, Never>
    /// When queue counts were last folded (see `foldCounts`), in milliseconds since 1970.
    private let lastFold = Mutex<Int64>(0)
    /// Per endpoint: when admissions were last announced, and whether one is waiting to be.
    let announced = Mutex<[String: (last: ContinuousClock.Instant, pending: Bool)]>([:])

    /// Opens the ledger `url` names, running its migrations unless `migrating` is false (a reader).
    ///
    /// - Throws: `LedgerError.storage(.unavailable, …)` naming the host, the database and the
    ///   reason when the server cannot be reached or refuses the connection.
    /// - Parameter lease: how long a process's lease lasts unless renewed (default 30 s).
    public static func open(
        url: String, migrating: Bool = true, lease: Duration = .seconds(30), logger: Logger = Logger(label: "spool.ledger")
    ) async throws -> PostgresLedger {
        let location = try LedgerURL(url)
        try await location.probe(logger: logger)
        let ledger = PostgresLedger(location: location, lease: lease, logger: logger)
        if migrating {
            try await ledger.migrate()
        } else {
            try await ledger.checkSchema()
        }
        return ledger
    }

    private init(location: LedgerURL, lease: Duration, logger: Logger) {
        leaseLength = lease
        var configuration = location.clientConfiguration
        configuration.options.maximumConnections = 8
        configuration.options.additionalStartupParameters = [("application_name", "spool")]
        var quiet = logger
        quiet.logLevel = ProcessInfo.processInfo.environment["SPOOL_POSTGRES_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        let client = PostgresClient(configuration: configuration, backgroundLogger: quiet)
        self.client = client
        self.logger = logger
        self.running = Task { await client.run() }
    }

    deinit {
        running.cancel()
    }

    /// The caller's time of the last expiry sweep (milliseconds since 1970).
    private let lastExpiry = Mutex<Int64?>(nil)

    /// Whether 250 ms of the caller's clock passed since the last sweep (or it went back).
    func expiryIsDue(now: Int64) -> Bool {
        lastExpiry.withLock { last in
            if let previous = last, now >= previous, now - previous < 250 { return false }
            last = now
            return true
        }
    }

    /// Whether a second has passed since the last fold; if so, the fold is this caller's.
    func lastFoldIsDue(now: Int64) -> Bool {
        lastFold.withLock { last in
            guard now - last >= 1000 else { return false }
            last = now
            return true
        }
    }

    // MARK: Running statements

    /// How long one statement may take before the ledger stops waiting for it. postgres-nio
    /// 1.33.2 never answers a query written to a connection that has just closed (the server
    /// ended it, the network dropped it): without a deadline such a call would wait forever.
    static let statementDeadline: Duration = .seconds(30)

    /// Runs `query` and returns its rows, drained (a statement's errors arrive while its rows are
    /// read), with PostgreSQL's errors as `LedgerError`s.
    func rows(_ query: PostgresQuery) async throws -> [PostgresRow] {
        do {
            return try await Self.withDeadline { [client, logger] in try await client.query(query, logger: logger).collect() }
        } catch {
            throw Self.ledgerError(error)
        }
    }

    /// Runs `body` in one transaction (READ COMMITTED: each statement sees what committed before
    /// it, and row locks decide the races), retried up to twice when the server reports a
    /// deadlock or a serialization failure. A transaction whose connection closed is not rolled
    /// back by the client (the server has ended it), and no statement waits past the deadline.
    func transaction<Result: Sendable>(_ body: @escaping @Sendable (Statements) async throws -> Result) async throws -> Result {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await client.withConnection { [logger] connection in
                    let statements = Statements(connection: connection, logger: logger)
                    try await statements.run("BEGIN")
                    do {
                        let value = try await body(statements)
                        try await statements.run("COMMIT")
                        return value
                    } catch {
                        if !connection.isClosed { _ = try? await statements.run("ROLLBACK") }
                        throw error
                    }
                }
            } catch {
                let mapped = Self.ledgerError(error)
                if attempt < 3, let state = Self.sqlState(error), state == "40P01" || state == "40001" { continue }
                throw mapped
            }
        }
    }

    /// Runs `operation`, or throws `LedgerError.storage(.unavailable, …)` once `deadline` passes
    /// (the operation is then left to end on its own: one that never ends is what this is for).
    static func withDeadline<T: Sendable>(
        _ deadline: Duration = statementDeadline, _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let once = ResumeOnce(continuation)
            let timer = Task {
                try await Task.sleep(for: deadline)
                once.resume(.failure(LedgerError.storage(.unavailable, message: "the database did not answer within \(deadline)")))
            }
            Task {
                do { once.resume(.success(try await operation())) } catch { once.resume(.failure(error)) }
                timer.cancel()
            }
        }
    }

    /// A continuation resumed by whichever comes first.
    private final class ResumeOnce<T: Sendable>: Sendable {
        private let continuation: Mutex<CheckedContinuation<T, any Error>?>

        init(_ continuation: CheckedContinuation<T, any Error>) {
            self.continuation = Mutex(continuation)
        }

        @discardableResult
        func resume(_ result: Result<T, any Error>) -> Bool {
            guard let continuation = continuation.withLock({ stored in defer { stored = nil }; return stored }) else { return false }
            continuation.resume(with: result)
            return true
        }
    }

    /// The statements of one transaction, on its connection.
    struct Statements: Sendable {
        let connection: PostgresConnection
        let logger: Logger

        func rows(_ query: PostgresQuery) async throws -> [PostgresRow] {
            guard !connection.isClosed else { throw LedgerError.storage(.unavailable, message: "the connection to the database closed") }
            return try await PostgresLedger.withDeadline { [connection, logger] in try await connection.query(query, logger: logger).collect() }
        }

        func requests(_ query: PostgresQuery) async throws -> [InferenceRequest] {
            try await rows(query).map(InferenceRequest.init(postgres:))
        }

        /// The request `id`, its row locked until the transaction ends.
        func locked(id: String) async throws -> InferenceRequest? {
            try await requests("SELECT \(unescaped: PostgresLedger.columns) FROM requests WHERE id = \(id) FOR UPDATE").first
        }

        func run(_ query: PostgresQuery) async throws {
            _ = try await rows(query)
        }
    }

    func requests(_ query: PostgresQuery) async throws -> [InferenceRequest] {
        try await rows(query).map(InferenceRequest.init(postgres:))
    }

    // MARK: Errors

    static func sqlState(_ error: any Error) -> String? {
        if let error = error as? PSQLError { return error.serverInfo?[.sqlState] }
        if let error = error as? PostgresTransactionError {
            return [error.closureError, error.commitError, error.beginError].lazy.compactMap { $0.flatMap(sqlState) }.first
        }
        return nil
    }

    /// The error a caller acts on: its own `LedgerError`s as they are, the server's by SQLSTATE class.
    static func ledgerError(_ error: any Error) -> any Error {
        if let error = error as? LedgerError { return error }
        if let error = error as? PostgresTransactionError {
            for inner in [error.closureError, error.commitError, error.beginError, error.rollbackError].compactMap({ $0 }) {
                return ledgerError(inner)
            }
        }
        if let error = error as? PostgresDecodingError {
            return LedgerError.storage(.corrupt, message: "a column could not be read: \(String(reflecting: error))")
        }
        guard let error = error as? PSQLError else {
            return LedgerError.storage(.unavailable, message: String(reflecting: error))
        }
        let message = error.serverInfo?[.message] ?? "\(error.code)"
        guard let state = error.serverInfo?[.sqlState] else {
            return LedgerError.storage(.unavailable, message: "the connection failed: \(message)")
        }
        switch state.prefix(2) {
        case "40", "55", "57": return LedgerError.storage(.busy, message: message)
        case "53": return LedgerError.storage(state == "53100" ? .full : .busy, message: message)
        case "08", "28", "3D": return LedgerError.storage(.unavailable, message: message)
        case "XX", "42": return LedgerError.storage(.corrupt, message: message)
        default: return LedgerError.storage(.other, message: "\(message) (SQLSTATE \(state))")
        }
    }
}

/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`, or with a Unix socket's folder:
/// `postgres://USER@/DB?host=/run/postgresql` (libpq's form; the socket is `.s.PGSQL.PORT` in it).
public struct LedgerURL: Sendable, Equatable, CustomStringConvertible {
    public var user: String
    public var password: String?
    /// A host name or address, or a socket folder (starting with `/`).
    public var host: String
    public var port: Int
    public var database: String

    public init(_ text: String) throws {
        func invalid(_ why: String) -> LedgerError {
            .storage(.unavailable, message: "[ledger] url \"\(LedgerURL.redacted(text))\" is not postgres://USER[:PASSWORD]@HOST[:PORT]/DB: \(why)")
        }
        guard let components = URLComponents(string: text) else { throw invalid("it is not a URL") }
        guard components.scheme == "postgres" || components.scheme == "postgresql" else { throw invalid("the scheme must be postgres") }
        guard let user = components.user, !user.isEmpty else { throw invalid("it names no user") }
        let database = String(components.path.dropFirst())
        guard !database.isEmpty, !database.contains("/") else { throw invalid("it names no database") }
        let socketFolder = components.queryItems?.first(where: { $0.name == "host" })?.value
        let host = socketFolder ?? components.host ?? ""
        guard !host.isEmpty else { throw invalid("it names no host (or ?host=/socket/folder)") }
        self.user = user
        self.password = components.password
        self.host = host
        self.port = components.port ?? 5432
        self.database = database
    }

    var isSocket: Bool { host.hasPrefix("/") }

    /// Where the server is, for messages: `host:port` or the socket's path.
    public var server: String { isSocket ? "\(host)/.s.PGSQL.\(port)" : "\(host):\(port)" }

    public var description: String { isSocket ? "postgres://\(user)@/\(database)?host=\(host)" : "postgres://\(user)@\(host):\(port)/\(database)" }

    static func redacted(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.password != nil else { return text }
        components.password = "***"
        return components.string ?? text
    }

    var clientConfiguration: PostgresClient.Configuration {
        isSocket
            ? .init(unixSocketPath: "\(host)/.s.PGSQL.\(port)", username: user, password: password, database: database)
            : .init(host: host, port: port, username: user, password: password, database: database, tls: .disable)
    }

    var connectionConfiguration: PostgresConnection.Configuration {
        isSocket
            ? .init(unixSocketPath: "\(host)/.s.PGSQL.\(port)", username: user, password: password, database: database)
            : .init(host: host, port: port, username: user, password: password, database: database, tls: .disable)
    }

    /// Connects once, to fail with the reason (the pool would retry quietly for a minute).
    func probe(logger: Logger) async throws {
        var configuration = connectionConfiguration
        configuration.options.connectTimeout = .seconds(5)
        do {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            try? await connection.close()
        } catch {
            throw LedgerError.storage(.unavailable, message: "cannot connect to PostgreSQL at \(server), database \(database): \(Self.reason(error))")
        }
    }

    static func reason(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let message = error.serverInfo?[.message] { return message }
        switch error.code {
        case .connectionError:
            if let io = error.underlying as? IOError { return "the server does not answer: \(String(cString: strerror(io.errnoCode)))" }
            return "the server does not answer: \(error.underlying.map { "\($0)" } ?? "connection refused")"
        case .authMechanismRequiresPassword: return "the server wants a password and the URL has none"
        default: return "\(error.code)"
        }
    }
}

extension InferenceRequest {
    /// The one place a `requests` row becomes a request: the columns of `PostgresLedger.columns`, in order.
    init(postgres row: PostgresRow) throws {
        let cells = row.makeRandomAccess()
        func decode<Value: PostgresDecodable>(_ index: Int, _ type: Value.Type) throws -> Value {
            try cells[index].decode(Value.self)
        }
        func value<Value: RawRepresentable<String>>(_ index: Int, _ column: String, as type: Value.Type) throws -> Value? {
            guard let raw = try decode(index, String?.self) else { return nil }
            guard let value = Value(rawValue: raw) else {
                throw LedgerError.storage(.corrupt, message: "requests.\(column) holds an unknown value '\(raw)'")
            }
            return value
        }
        func date(_ index: Int) throws -> Date? {
            try decode(index, Int64?.self).map(Date.init(millisecondsSince1970:))
        }
        let exitStatus = try decode(24, Int32?.self)
        let signal = try decode(25, Int32?.self)
        let httpStatus = try decode(26, Int?.self)
        let tail = try decode(27, String?.self)
        let evidence = exitStatus == nil && signal == nil && httpStatus == nil && tail == nil
            ? nil : ModelEvidence(exitStatus: exitStatus, signal: signal, httpStatus: httpStatus, tail: tail)
        guard let source = try value(3, "source", as: RequestSource.self),
              let state = try value(13, "state", as: RequestState.self),
              let receivedAt = try date(14)
        else { throw LedgerError.storage(.corrupt, message: "requests.source, state or received_at is NULL") }
        self.init(
            seq: try decode(0, Int64.self),
            id: try decode(1, String.self),
            endpoint: try decode(2, String.self),
            source: source,
            inputPath: try decode(4, String.self),
            claimToken: try decode(5, String.self),
            payloadBytes: try decode(6, Int64.self),
            contentType: try decode(7, String?.self),
            accept: try decode(8, String?.self),
            customAttributes: try decode(9, String?.self),
            ttlSeconds: try decode(10, Int.self),
            timeoutSeconds: try decode(11, Int.self),
            maxAttempts: try decode(12, Int.self),
            state: state,
            receivedAt: receivedAt,
            startedAt: try date(15),
            finishedAt: try date(16),
            attempts: try decode(17, Int.self),
            bytesProcessed: try decode(18, Int64.self),
            outputLocation: try decode(19, String.self),
            failureLocation: try decode(20, String.self),
            failureCode: try value(21, "failure_code", as: FailureCode.self),
            failureReason: try decode(22, String?.self),
            evidence: evidence,
            owner: try decode(28, String?.self),
            notified: try decode(23, Bool.self)
        )
    }
}

extension PostgresLedger {
    /// The columns `InferenceRequest(postgres:)` reads, in its order: every SELECT and RETURNING
    /// of whole requests names them.
    static let columns = """
        seq, id, endpoint, source, input_path, claim_token, payload_bytes, content_type, accept, \
        custom_attributes, ttl_seconds, timeout_seconds, max_attempts, state, received_at, started_at, \
        finished_at, attempts, bytes_processed, output_location, failure_location, failure_code, \
        failure_reason, notified, exit_status, signal, http_status, evidence_tail, owner
        """
}
