import PostgresNIO
import SpoolCore

extension PostgresLedger {
    /// The ledger's migrations, applied in order by `migrate`, each in the transaction that records
    /// it in `spool_migrations`. A shipped migration is never edited: a change is a new one
    /// appended here. Each is a list of single statements (the extended protocol runs one at a time).
    ///
    /// The schema keeps SQLite's invariants: `CHECK`s on the state, the failure code, and on which
    /// columns each state fills (`finished_at` for finished requests, `owner` for running ones,
    /// `failure_code` for those that did not succeed).
    static let migrations: [[String]] = [v1, v2]

    /// Queue counts without a hot row: a trigger appends each change of a request's endpoint or
    /// state to `queue_count_deltas` (inserts never wait for one another, where an `UPDATE` of one
    /// count row would serialize every claim), `queueStats` adds the deltas to `queue_counts`, and
    /// `foldCounts` moves them there every second or so. Indexes: `requests_claim` (the oldest
    /// queued request of an endpoint), `requests_expiry` (the expiry sweep), `requests_finished_at`
    /// (retention), `requests_unnotified` (the publisher), `requests_latency` (the latency window,
    /// from the index alone), `requests_failures` (the status page), `requests_running` (rescue).
    private static let v1 = [
        """
        CREATE TABLE requests (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            endpoint TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('drop', 'invoke', 'http')),
            input_path TEXT NOT NULL,
            claim_token TEXT NOT NULL UNIQUE,
            payload_bytes BIGINT NOT NULL CHECK (payload_bytes >= 0),
            content_type TEXT,
            accept TEXT,
            custom_attributes TEXT,
            ttl_seconds BIGINT NOT NULL CHECK (ttl_seconds >= 0),
            timeout_seconds BIGINT NOT NULL CHECK (timeout_seconds >= 0),
            max_attempts BIGINT NOT NULL CHECK (max_attempts >= 1),
            state TEXT NOT NULL
                CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'expired', 'cancelled')),
            received_at BIGINT NOT NULL,
            started_at BIGINT,
            finished_at BIGINT,
            expires_at BIGINT,
            attempts BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            bytes_processed BIGINT NOT NULL DEFAULT 0 CHECK (bytes_processed >= 0),
            output_location TEXT NOT NULL,
            failure_location TEXT NOT NULL,
            failure_code TEXT CHECK (failure_code IN ('ModelError', 'InvocationTimeout', 'Expired',
                'PayloadTooLarge', 'InvalidRequest', 'Cancelled', 'InputUnreadable',
                'OutputWriteFailed', 'NoCapacity')),
            failure_reason TEXT,
            exit_status INTEGER,
            signal INTEGER,
            http_status BIGINT,
            evidence_tail TEXT,
            owner TEXT,
            notified BOOLEAN NOT NULL DEFAULT false,
            attempt_errors JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(attempt_errors) = 'array'),
            CHECK ((finished_at IS NOT NULL) = (state IN ('succeeded', 'failed', 'expired', 'cancelled'))),
            CHECK ((owner IS NOT NULL) = (state = 'running')),
            CHECK ((failure_code IS NOT NULL) = (state IN ('failed', 'expired', 'cancelled')))
        )
        """,
        "CREATE INDEX requests_claim ON requests (endpoint, seq) WHERE state = 'queued'",
        "CREATE INDEX requests_expiry ON requests (endpoint, expires_at) WHERE state = 'queued'",
        "CREATE INDEX requests_finished_at ON requests (finished_at, seq) WHERE finished_at IS NOT NULL",
        "CREATE INDEX requests_unnotified ON requests (finished_at, seq) WHERE NOT notified AND finished_at IS NOT NULL",
        """
        CREATE INDEX requests_latency ON requests (endpoint, finished_at) INCLUDE (received_at, started_at)
            WHERE started_at IS NOT NULL AND state IN ('succeeded', 'failed')
        """,
        "CREATE INDEX requests_failures ON requests (finished_at) WHERE state IN ('failed', 'expired', 'cancelled')",
        "CREATE INDEX requests_running ON requests (owner) WHERE state = 'running'",
        """
        CREATE TABLE counters (
            endpoint TEXT NOT NULL,
            name TEXT NOT NULL,
            value BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (endpoint, name)
        )
        """,
        """
        CREATE TABLE queue_counts (
            endpoint TEXT NOT NULL,
            state TEXT NOT NULL,
            count BIGINT NOT NULL,
            PRIMARY KEY (endpoint, state)
        )
        """,
        """
        CREATE TABLE queue_count_deltas (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            endpoint TEXT NOT NULL,
            state TEXT NOT NULL,
            n INTEGER NOT NULL
        )
        """,
        """
        CREATE FUNCTION spool_count_requests() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO queue_count_deltas (endpoint, state, n) VALUES (NEW.endpoint, NEW.state, 1);
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO queue_count_deltas (endpoint, state, n) VALUES (OLD.endpoint, OLD.state, -1);
            ELSIF OLD.state IS DISTINCT FROM NEW.state OR OLD.endpoint IS DISTINCT FROM NEW.endpoint THEN
                INSERT INTO queue_count_deltas (endpoint, state, n)
                    VALUES (OLD.endpoint, OLD.state, -1), (NEW.endpoint, NEW.state, 1);
            END IF;
            RETURN NULL;
        END
        $$
        """,
        """
        CREATE TRIGGER requests_count AFTER INSERT OR DELETE OR UPDATE OF state, endpoint ON requests
            FOR EACH ROW EXECUTE FUNCTION spool_count_requests()
        """,
    ]

    /// Leases: each process's liveness, by the database's clock (see `LeasingLedger`).
    private static let v2 = [
        """
        CREATE TABLE leases (
            owner TEXT PRIMARY KEY,
            acquired_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
            expires_at TIMESTAMPTZ NOT NULL
        )
        """,
    ]

    /// An advisory lock key only Spool's migrations take (two processes starting at once migrate once).
    private static let migrationLock: Int64 = 0x5370_6F6F_6C4D_6967

    /// Applies the migrations the database lacks.
    func migrate() async throws {
        try await transaction { statements in
            try await statements.run("SELECT pg_advisory_xact_lock(\(Self.migrationLock))")
            try await statements.run("""
                CREATE TABLE IF NOT EXISTS spool_migrations (
                    version INTEGER PRIMARY KEY,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
                """)
            var applied = Set<Int>()
            for row in try await statements.rows("SELECT version FROM spool_migrations") {
                applied.insert(try row.decode(Int.self))
            }
            for (index, migration) in Self.migrations.enumerated() where !applied.contains(index + 1) {
                for statement in migration {
                    try await statements.run(PostgresQuery(unsafeSQL: statement))
                }
                try await statements.run("INSERT INTO spool_migrations (version) VALUES (\(index + 1))")
            }
        }
    }

    /// A reader's check: the schema is there and not newer than this binary knows.
    func checkSchema() async throws {
        let rows: [PostgresRow]
        do {
            rows = try await self.rows("SELECT COALESCE(MAX(version), 0) FROM spool_migrations")
        } catch {
            throw LedgerError.storage(.unavailable, message: "the database holds no Spool ledger yet (start `spool serve` with this [ledger] url first): \(error)")
        }
        let version = try rows.first?.decode(Int.self) ?? 0
        guard version == Self.migrations.count else {
            throw LedgerError.storage(.corrupt, message: version < Self.migrations.count
                ? "the ledger's schema is version \(version); this spool needs \(Self.migrations.count) (start `spool serve` to migrate it)"
                : "the ledger's schema is version \(version), newer than this spool knows (\(Self.migrations.count))")
        }
    }
}
