import ArgumentParser
import Foundation
import Logging
import SpoolCore
import SpoolDaemon
import SpoolLedger

/// Options every subcommand shares.
struct RootOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The spool root (default: $SPOOL_ROOT, else ./spool).", valueName: "dir"))
    var root: String?

    @Flag(name: .long, help: "Machine-readable output: one JSON object per line.")
    var json = false

    var layout: SpoolLayout {
        SpoolLayout(root: root ?? ProcessInfo.processInfo.environment["SPOOL_ROOT"] ?? "spool")
    }

    /// The configuration, or exit 2 naming the file, key and reason.
    func loadConfig() throws -> SpoolConfig {
        do {
            return try ConfigFile.load(layout: layout)
        } catch {
            throw CLIError.usage("bad configuration: \(error.description)")
        }
    }

    /// The ledger, to read: opened without touching its schema (a SQLite ledger that does not
    /// exist yet is created, as the first write would).
    func openReader() async throws -> any Ledger {
        let config = try loadConfig()
        if config.ledgerURL == nil, !FileManager.default.fileExists(atPath: layout.ledgerPath) { return try await openLedger() }
        do {
            return try await LedgerStore.open(layout: layout, config: config, migrating: false, logger: Logger(label: "spool"))
        } catch {
            throw CLIError.failure("cannot read the ledger at \(LedgerStore.location(layout: layout, config: config)): \(error)")
        }
    }

    /// The ledger, read-write (the CLI records cancels and submissions too).
    func openLedger() async throws -> any Ledger {
        let layout = self.layout
        guard FileManager.default.fileExists(atPath: layout.root) else {
            throw CLIError.usage("no spool root at \(layout.root) (create one with `spool init \(layout.root)`)")
        }
        let config = try loadConfig()
        do {
            return try await LedgerStore.open(layout: layout, config: config, logger: Logger(label: "spool"))
        } catch {
            throw CLIError.failure("cannot open the ledger at \(LedgerStore.location(layout: layout, config: config)): \(error)")
        }
    }

    func publisher(ledger: any Ledger, config: SpoolConfig) -> ResultPublisher {
        ResultPublisher(layout: layout, config: config, ledger: ledger, logger: Logger(label: "spool"))
    }
}

/// Writes lines to standard output.
enum Output {
    static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func json<T: Encodable>(_ value: T) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        if let data = try? encoder.encode(value) {
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        }
    }

    /// Aligned columns.
    static func table(_ rows: [[String]]) {
        guard let first = rows.first else { return }
        var widths = [Int](repeating: 0, count: first.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        for row in rows {
            let cells = row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }
            line(cells.joined(separator: "  "))
        }
    }
}

/// Logging to standard error, one line per event, level from `--log-level` or `SPOOL_LOG_LEVEL`.
enum LogSetup {
    static func bootstrap(level: String?) -> Logger {
        let name = level ?? ProcessInfo.processInfo.environment["SPOOL_LOG_LEVEL"] ?? "info"
        let parsed = Logger.Level(rawValue: name.lowercased()) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = parsed
            return handler
        }
        return Logger(label: "spool")
    }
}

/// `--since TIME` of `spool events` and `spool logs`: an ISO 8601 time or an age before now.
struct SinceOption: ParsableArguments {
    @Option(help: ArgumentHelp("Only lines at or after this time: an ISO 8601 time, or an age like 10m, 2h, 7d.", valueName: "time"))
    var since: String?

    func validate() throws {
        if let since, Age.cutoff(since, now: Date()) == nil {
            throw ValidationError("--since takes an ISO 8601 time (2026-11-25T10:00:00Z) or an age (30s, 10m, 2h, 7d), not \"\(since)\"")
        }
    }

    /// The cutoff as a `Timestamp` string, nil without `--since`.
    var cutoff: String? { since.flatMap { Age.cutoff($0, now: Date()) } }
}

/// The inference id a subcommand acts on, and its lookup (`cat`, `cancel`, `retry`).
struct RequestIDArgument: ParsableArguments {
    @Argument(help: "The inference id.")
    var id: String

    /// The request, or a usage error naming the unknown id.
    func request(in ledger: any LedgerReader) async throws -> InferenceRequest {
        guard let request = try await ledger.request(id: id) else { throw Self.unknown(id) }
        return request
    }

    static func unknown(_ id: String, _ why: String? = nil) -> CLIError {
        CLIError.usage("unknown inference id \(id)" + (why.map { " (\($0))" } ?? ""))
    }
}
