import GRDB

extension SQLiteLedger {
    /// The ledger's migrations, applied in order when a ledger opens its file.
    ///
    /// A shipped migration is never edited: a schema change is a new migration appended here.
    /// The state and failure-code strings are written out rather than generated from
    /// `RequestState` and `FailureCode`, so that a new enum case cannot silently change what an
    /// old migration does; the schema tests check that every case is accepted.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: v1)
        }
        migrator.registerMigration("v2") { db in
            try db.execute(sql: v2)
        }
        migrator.registerMigration("v3") { db in
            try db.execute(sql: v3)
        }
        migrator.registerMigration("v4") { db in
            try db.execute(sql: v4)
        }
        return migrator
    }

    /// The `requests` table, its invariants and its indexes (river-style: the schema refuses
    /// a row the lifecycle could not produce).
    ///
    /// `expires_at` is when a queued request that never started expires (`received_at` plus the
    /// TTL, or the retry time plus the TTL). A claim clears it: a request that started in time
    /// does not expire when it is later requeued after a crash or a retryable failure.
    ///
    /// Indexes: `requests_claim` finds the oldest queued request of an endpoint; `requests_expiry`
    /// lets the expiry sweep run by every claim touch only the rows that are due, not the whole
    /// backlog; `requests_finished_at` serves gc; `requests_unnotified` serves the notifier.
    private static let v1 = """
        CREATE TABLE requests (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            endpoint TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('drop', 'invoke', 'http')),
            input_path TEXT NOT NULL,
            claim_token TEXT NOT NULL UNIQUE,
            payload_bytes INTEGER NOT NULL CHECK (payload_bytes >= 0),
            content_type TEXT,
            accept TEXT,
            custom_attributes TEXT,
            ttl_seconds INTEGER NOT NULL CHECK (ttl_seconds >= 0),
            timeout_seconds INTEGER NOT NULL CHECK (timeout_seconds >= 0),
            max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
            state TEXT NOT NULL
                CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'expired', 'cancelled')),
            received_at INTEGER NOT NULL,
            started_at INTEGER,
            finished_at INTEGER,
            expires_at INTEGER,
            attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            bytes_processed INTEGER NOT NULL DEFAULT 0 CHECK (bytes_processed >= 0),
            output_location TEXT NOT NULL,
            failure_location TEXT NOT NULL,
            failure_code TEXT CHECK (failure_code IN ('ModelError', 'InvocationTimeout', 'Expired',
                'PayloadTooLarge', 'InvalidRequest', 'Cancelled', 'InputUnreadable',
                'OutputWriteFailed', 'NoCapacity')),
            failure_reason TEXT,
            exit_status INTEGER,
            signal INTEGER,
            http_status INTEGER,
            evidence_tail TEXT,
            owner TEXT,
            notified INTEGER NOT NULL DEFAULT 0 CHECK (notified IN (0, 1)),
            attempt_errors TEXT NOT NULL DEFAULT '[]' CHECK (json_type(attempt_errors) = 'array'),
            CHECK ((finished_at IS NOT NULL) = (state IN ('succeeded', 'failed', 'expired', 'cancelled'))),
            CHECK ((owner IS NOT NULL) = (state = 'running')),
            CHECK ((failure_code IS NOT NULL) = (state IN ('failed', 'expired', 'cancelled')))
        );
        CREATE INDEX requests_claim ON requests (state, endpoint, seq);
        CREATE INDEX requests_expiry ON requests (endpoint, expires_at) WHERE state = 'queued';
        CREATE INDEX requests_finished_at ON requests (finished_at);
        CREATE INDEX requests_unnotified ON requests (finished_at, seq)
            WHERE notified = 0 AND finished_at IS NOT NULL;
        """

    /// Named per-endpoint counters that outlive the requests they count (`NotificationFailures`:
    /// a failed delivery leaves no trace in `requests`), shared by every process of the root.
    private static let v2 = """
        CREATE TABLE counters (
            endpoint TEXT NOT NULL,
            name TEXT NOT NULL,
            value INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (endpoint, name)
        ) WITHOUT ROWID;
        """

    /// Costs that do not grow with history. `queue_counts` holds how many requests each endpoint
    /// has in each state, kept by triggers in the same transaction as every insert, state change
    /// and delete of `requests`, so the queue's counts are a read of a few rows however many
    /// finished requests the ledger holds. `requests_latency` serves the latency window of
    /// `spool stats` (the most recent finishes of one endpoint) from the index alone.
    private static let v3 = """
        CREATE TABLE queue_counts (
            endpoint TEXT NOT NULL,
            state TEXT NOT NULL
                CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'expired', 'cancelled')),
            count INTEGER NOT NULL CHECK (count >= 0),
            PRIMARY KEY (endpoint, state)
        ) WITHOUT ROWID;
        INSERT INTO queue_counts (endpoint, state, count)
            SELECT endpoint, state, COUNT(*) FROM requests GROUP BY endpoint, state;
        CREATE TRIGGER requests_count_insert AFTER INSERT ON requests
        BEGIN
            INSERT INTO queue_counts (endpoint, state, count) VALUES (NEW.endpoint, NEW.state, 1)
                ON CONFLICT (endpoint, state) DO UPDATE SET count = count + 1;
        END;
        CREATE TRIGGER requests_count_delete AFTER DELETE ON requests
        BEGIN
            UPDATE queue_counts SET count = count - 1 WHERE endpoint = OLD.endpoint AND state = OLD.state;
        END;
        CREATE TRIGGER requests_count_update AFTER UPDATE OF state, endpoint ON requests
            WHEN OLD.state IS NOT NEW.state OR OLD.endpoint IS NOT NEW.endpoint
        BEGIN
            UPDATE queue_counts SET count = count - 1 WHERE endpoint = OLD.endpoint AND state = OLD.state;
            INSERT INTO queue_counts (endpoint, state, count) VALUES (NEW.endpoint, NEW.state, 1)
                ON CONFLICT (endpoint, state) DO UPDATE SET count = count + 1;
        END;
        CREATE INDEX requests_latency ON requests (endpoint, finished_at, received_at, started_at)
            WHERE started_at IS NOT NULL AND state IN ('succeeded', 'failed');
        """

    /// The status page's latest failures: an index over the finish times of the requests that
    /// did not succeed only, so finding the latest few costs the same however many successes
    /// the ledger holds.
    private static let v4 = """
        CREATE INDEX requests_failures ON requests (finished_at)
            WHERE state IN ('failed', 'expired', 'cancelled');
        """
}
