import Foundation
import Logging
import SpoolCore
import SpoolLedger
import SpoolPostgres

/// Opens the ledger a configuration names: the root's SQLite file, or PostgreSQL with
/// `[ledger] url` (or `SPOOL_LEDGER_URL`).
public enum LedgerStore {
    /// - Parameter migrating: false for readers, which never change the schema.
    public static func open(layout: SpoolLayout, config: SpoolConfig, migrating: Bool = true, logger: Logger) async throws -> any Ledger {
        if let url = config.ledgerURL {
            return try await PostgresLedger.open(url: url, migrating: migrating, lease: .seconds(config.leaseSeconds), logger: logger)
        }
        return try SQLiteLedger(path: layout.ledgerPath, migrating: migrating)
    }

    /// Where the ledger is, for messages (a URL without its password).
    public static func location(layout: SpoolLayout, config: SpoolConfig) -> String {
        guard let url = config.ledgerURL else { return layout.ledgerPath }
        return (try? LedgerURL(url).description) ?? "the [ledger] url"
    }
}
