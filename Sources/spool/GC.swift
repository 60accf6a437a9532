import ArgumentParser
import Foundation
import SpoolCore
import SpoolDaemon

struct GC: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove finished requests older than an age: their ledger rows, kept inputs, outputs and markers."
    )

    @OptionGroup var options: RootOptions

    @Option(help: ArgumentHelp("Age of the finished requests to remove: 30s, 10m, 2h, 7d, 1w.", valueName: "age"))
    var olderThan: String

    @Flag(help: "Only say what would be removed.")
    var dryRun = false

    func validate() throws {
        if Age.parse(olderThan) == nil {
            throw ValidationError("--older-than takes an age like 30s, 10m, 2h, 7d or 1w, not \"\(olderThan)\"")
        }
    }

    func run() async throws {
        let retention = Retention(layout: options.layout, ledger: try await options.openLedger(), removeOutputs: true)
        let cutoff = Date().addingTimeInterval(-Age.parse(olderThan)!)
        let dryRun = self.dryRun
        let summary = try await retention.sweep(finishedBefore: cutoff, batchSize: 1000, dryRun: dryRun) { path in
            if dryRun { Output.line("  \(path)") }
        }
        if options.json {
            struct Summary: Encodable { var requests: Int; var files: Int; var dryRun: Bool }
            Output.json(Summary(requests: summary.requests, files: summary.files, dryRun: dryRun))
        } else {
            let verb = dryRun ? "would remove" : "removed"
            Output.line("\(verb) \(summary.requests) finished requests and \(summary.files) files older than \(olderThan)")
        }
    }
}
