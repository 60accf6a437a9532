import Foundation
import SpoolCore
import SpoolLedger
import SpoolLedgerConformance
import Testing

/// The ledger conformance suite on a real SQLite file, one fresh directory per check.
@Suite struct SQLiteLedgerConformanceTests {
    @Test(arguments: LedgerConformance.checks)
    func conformance(_ check: LedgerCheck) async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent(".spool/ledger.sqlite").path
            try await check.run(LedgerConformance { try SQLiteLedger(path: path) })
        }
    }
}
