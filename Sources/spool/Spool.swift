import ArgumentParser
import Foundation

#if canImport(Glibc)
import Glibc
#endif

@main
struct Spool: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spool",
        abstract: "Asynchronous inference on one machine: drop a file, get a result.",
        discussion: """
            Payloads dropped into <root>/incoming are queued in a SQLite ledger, streamed through a \
            model, and their results written to <root>/outputs (or error markers to <root>/errors).
            """,
        version: "0.1.0",
        subcommands: [
            Init.self, Serve.self, Drain.self, Invoke.self, Wait.self, Cat.self, Status.self, List.self,
            Cancel.self, Retry.self, Events.self, Logs.self, Stats.self, GC.self, GuardModels.self, BenchLedger.self,
        ]
    )

    /// Parses and runs; user mistakes print one clear message and exit 2.
    static func main() async {
        if InitProcess.isNeeded { Glibc.exit(InitProcess.run()) }
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as CLIError {
            FileHandle.standardError.write(Data("spool: \(error.message)\n".utf8))
            Glibc.exit(error.exitCode)
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                // One line that names the problem; `--help` has the rest.
                let message = message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid usage"
                FileHandle.standardError.write(Data("spool: \(message.replacingOccurrences(of: "Error: ", with: ""))\n".utf8))
                Glibc.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// A failure the CLI reports as one line, with its exit status.
struct CLIError: Error {
    var message: String
    var exitCode: Int32

    static func usage(_ message: String) -> CLIError { CLIError(message: message, exitCode: 2) }
    static func failure(_ message: String) -> CLIError { CLIError(message: message, exitCode: 1) }
}
