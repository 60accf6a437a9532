import GRDB
import GRDBSQLite
import Synchronization

/// Counts the work of every statement a `SQLiteLedger` runs, in SQLite virtual-machine steps
/// (`SQLITE_STMTSTATUS_VM_STEP`): a number that grows with the rows a statement visits, not
/// with the machine's speed or load. Tests use it to show that a path costs the same with a
/// large history as with none; a ledger opened without a meter pays nothing for it.
public final class StatementMeter: Sendable {
    private let steps = Atomic<Int>(0)

    public init() {}

    /// Steps run by the ledger's statements since it opened or since the last `reset()`.
    public var stepsTaken: Int { steps.load(ordering: .relaxed) }

    /// Sets the count back to zero.
    public func reset() { steps.store(0, ordering: .relaxed) }

    /// Adds each statement's steps to the count as the statement finishes (SQLite's profile
    /// trace fires once per run, when the statement completes or is reset).
    func attach(to db: Database) {
        let context = Unmanaged.passUnretained(self).toOpaque()
        sqlite3_trace_v2(db.sqliteConnection, UInt32(SQLITE_TRACE_PROFILE), { _, context, statement, _ in
            guard let context, let statement else { return 0 }
            let meter = Unmanaged<StatementMeter>.fromOpaque(context).takeUnretainedValue()
            let steps = sqlite3_stmt_status(OpaquePointer(statement), SQLITE_STMTSTATUS_VM_STEP, 1)
            meter.steps.add(Int(steps), ordering: .relaxed)
            return 0
        }, context)
    }
}
