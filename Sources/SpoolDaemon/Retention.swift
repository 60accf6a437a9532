import Foundation
import SpoolCore
import SpoolSystem

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
            let removed = try await RetentionLock.holding(layout) { () async throws -> Int? in
                let batch = try await ledger.finished(before: cutoff, limit: dryRun ? Int.max / 2 : batchSize)
                if batch.isEmpty { return nil }
                for request in batch {
                    summary.files += removeFiles(of: request, dryRun: dryRun, report: report)
                }
                if dryRun {
                    summary.requests += batch.count
                    return nil
                }
                summary.requests += try await ledger.delete(ids: batch.map(\.id))
                return batch.count
            }
            guard let removed, removed == batchSize else { break }
            await between()
            // Between batches the lock is free for a moment: long enough for a waiting
            // `spool retry` (which polls every 5 ms) to take it.
            try? await Task.sleep(for: .milliseconds(10))
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

extension Retention {
    /// What `retry(id:)` did.
    public enum RetryOutcome: Sendable {
        /// Queued again.
        case queued(InferenceRequest)
        /// No such request (never known, or removed by retention).
        case unknown
        /// The request is known, but its input was not kept (`keep_failed_inputs = false`, or
        /// removed by `spool gc`).
        case inputNotKept
    }

    /// Queues a finished request again from its kept input (`spool retry`). It runs under the
    /// retention lock: a retention batch either removed the request before (`unknown`), or sees
    /// it queued after and leaves it alone; it never removes the input of a request it queued.
    /// A request that is not finished is refused with `LedgerError.conflict`.
    public static func retry(id: String, layout: SpoolLayout, ledger: any Ledger, now: Date) async throws -> RetryOutcome {
        try await RetentionLock.holding(layout) {
            guard let request = try await ledger.request(id: id) else { return .unknown }
            var info = stat()
            guard lstat(layout.path(request.claimedPayloadPath), &info) == 0 else { return .inputNotKept }
            guard let retried = try await ledger.retry(id: id, now: now) else { return .unknown }
            return .queued(retried)
        }
    }
}

/// An exclusive `flock` on `.spool/retention.lock`, taken around each retention batch and each
/// retry. It is tried without blocking and retried every few milliseconds, so a holder never
/// ties up a thread of the concurrency pool; the file is the daemon user's alone (mode 0600).
enum RetentionLock {
    static func holding<T>(_ layout: SpoolLayout, _ body: () async throws -> T) async throws -> T {
        let path = layout.path(SpoolLayout.retentionLockFile)
        let fd = try SystemCalls.open(path, O_RDWR | O_CREAT | O_CLOEXEC, mode: 0o600)
        defer { close(fd) }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let error = errno
            guard error == EWOULDBLOCK || error == EINTR else { throw SystemError(call: "flock", errno: error, path: path) }
            try await Task.sleep(for: .milliseconds(5))
        }
        return try await body()
    }
}
