import ArgumentParser
import Foundation
import SpoolCore
import SpoolDaemon

#if canImport(Glibc)
import Glibc
#endif

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
        if Duration.parseAge(olderThan) == nil {
            throw ValidationError("--older-than takes an age like 30s, 10m, 2h, 7d or 1w, not \"\(olderThan)\"")
        }
    }

    func run() async throws {
        let ledger = try options.openLedger()
        let layout = options.layout
        let cutoff = Date().addingTimeInterval(-Duration.parseAge(olderThan)!)
        let terminal = RequestState.allCases.filter(\.isTerminal)
        var removedRequests = 0
        var removedFiles = 0
        while true {
            // A dry run deletes nothing, so it lists everything at once instead of in batches.
            let batch = try await ledger.list(LedgerQuery(states: terminal, limit: dryRun ? 10_000_000 : 1000, finishedBefore: cutoff))
            if batch.isEmpty { break }
            for request in batch {
                removedFiles += remove(layout.path(request.claimDirectory), unlessNewerThan: nil)
                // A later request for the same path may have replaced the output or marker:
                // only files no newer than this request's end are its own.
                let end = (request.finishedAt ?? cutoff).addingTimeInterval(1)
                removedFiles += remove(layout.path(request.outputLocation), unlessNewerThan: end)
                removedFiles += remove(layout.path(request.failureLocation), unlessNewerThan: end)
            }
            if dryRun {
                removedRequests += batch.count
                break
            }
            removedRequests += try await ledger.delete(ids: batch.map(\.id))
        }
        let verb = dryRun ? "would remove" : "removed"
        if options.json {
            struct Summary: Encodable { var requests: Int; var files: Int; var dryRun: Bool }
            Output.json(Summary(requests: removedRequests, files: removedFiles, dryRun: dryRun))
        } else {
            Output.line("\(verb) \(removedRequests) finished requests and \(removedFiles) files older than \(olderThan)")
        }
    }

    /// Removes a file or folder (never following links) unless it changed after `limit`.
    /// Returns 1 if something was (or, with --dry-run, would be) removed.
    func remove(_ path: String, unlessNewerThan limit: Date?) -> Int {
        var info = stat()
        guard lstat(path, &info) == 0 else { return 0 }
        if let limit, Double(info.st_mtim.tv_sec) > limit.timeIntervalSince1970 { return 0 }
        if dryRun {
            Output.line("  \(path)")
            return 1
        }
        return (try? FileManager.default.removeItem(atPath: path)) != nil ? 1 : 0
    }
}
