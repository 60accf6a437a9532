import Foundation
import SpoolCore

#if canImport(Glibc)
import Glibc
#endif

/// Removes finished requests past an age: their ledger rows and kept inputs, and, when asked,
/// their outputs and error markers. `spool gc` runs it once; `RetentionService` runs it in the
/// daemon for `[spool] retain_finished`.
///
/// Each batch removes its requests' files first and their rows after, in one ledger transaction.
/// A crash between the two leaves rows whose files are gone, which the next sweep removes; never
/// a kept input without its row, which recovery would take for a half-made claim and queue again.
public struct Retention: Sendable {
    /// What a sweep removed (or, for a dry run, would remove).
    public struct Summary: Sendable, Equatable, Encodable {
        public var requests = 0
        public var files = 0
    }

    let layout: SpoolLayout
    let ledger: any Ledger
    /// Whether outputs and error markers are removed with their requests.
    let removeOutputs: Bool

    public init(layout: SpoolLayout, ledger: any Ledger, removeOutputs: Bool) {
        self.layout = layout
        self.ledger = ledger
        self.removeOutputs = removeOutputs
    }

    /// Removes every request that finished before `cutoff`, earliest first, `batchSize` at a
    /// time, calling `between` after each batch (the daemon yields to the queue there). With
    /// `dryRun`, removes nothing and reports the paths that would go to `report`.
    public func sweep(
        finishedBefore cutoff: Date, batchSize: Int = 256, dryRun: Bool = false,
        report: (String) -> Void = { _ in }, between: () async -> Void = {}
    ) async throws -> Summary {
        var summary = Summary()
        while true {
            // A dry run deletes nothing, so it reads everything at once instead of in batches.
            let batch = try await ledger.finished(before: cutoff, limit: dryRun ? Int.max / 2 : batchSize)
            if batch.isEmpty { break }
            for request in batch {
                summary.files += removeFiles(of: request, dryRun: dryRun, report: report)
            }
            if dryRun {
                summary.requests += batch.count
                break
            }
            summary.requests += try await ledger.delete(ids: batch.map(\.id))
            if batch.count < batchSize { break }
            await between()
        }
        return summary
    }

    /// Removes the files of a finished request: its kept input, and with `removeOutputs` its
    /// output and marker when no later request for the same path replaced them (only files no
    /// newer than the request's end are its own). Returns how many went (or would go).
    func removeFiles(of request: InferenceRequest, dryRun: Bool = false, report: (String) -> Void = { _ in }) -> Int {
        var removed = remove(layout.path(request.claimDirectory), unlessNewerThan: nil, dryRun: dryRun, report: report)
        if removeOutputs {
            let end = (request.finishedAt ?? .distantPast).addingTimeInterval(1)
            removed += remove(layout.path(request.outputLocation), unlessNewerThan: end, dryRun: dryRun, report: report)
            removed += remove(layout.path(request.failureLocation), unlessNewerThan: end, dryRun: dryRun, report: report)
        }
        return removed
    }

    /// Removes a file or folder (never following links) unless it changed after `limit`.
    /// Returns 1 if something was (or would be) removed.
    private func remove(_ path: String, unlessNewerThan limit: Date?, dryRun: Bool, report: (String) -> Void) -> Int {
        var info = stat()
        guard lstat(path, &info) == 0 else { return 0 }
        if let limit, Double(info.st_mtim.tv_sec) > limit.timeIntervalSince1970 { return 0 }
        report(path)
        if dryRun { return 1 }
        return (try? FileManager.default.removeItem(atPath: path)) != nil ? 1 : 0
    }
}
