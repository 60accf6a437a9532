import CSpoolSystem
import Foundation
import SpoolCore
import SpoolIntake
import Synchronization

#if canImport(Glibc)
import Glibc
import SpoolSystem
#endif

extension SpoolEngine {
    /// Queues a payload read from `input` (a file or standard input), as `spool invoke` and an
    /// HTTP `InputLocation` do: see `submit(endpoint:metadata:source:write:)`.
    public func submit(
        from input: Int32, endpoint: EndpointConfig, metadata: RequestMetadata, source: RequestSource, placement: OutputPlacement = .init()
    ) async throws -> InferenceRequest? {
        try await submit(endpoint: endpoint, metadata: metadata, source: source, placement: placement) { fd, path in
            try Self.copyStream(from: input, to: fd, chunkBytes: endpoint.chunkBytes, path: path)
        }
    }

    /// Queues a payload that `write` puts into a fresh file (given as descriptor and path).
    ///
    /// The file is `.spool/partial/.<id>.<owner>.submit` until it is whole and durable, then it
    /// is renamed into a claim, so a crash never leaves a partial payload that looks complete
    /// (and recovery removes the temporary files of dead owners). Submissions made at the same
    /// time are made durable, claimed and recorded together (group commit: one ledger
    /// transaction for the batch). The input path is the inference id, so the output is
    /// `outputs/<id>.out` (or as `placement` says). Returns the stored request, or nil when the
    /// ledger failed.
    public func submit(
        endpoint: EndpointConfig, metadata: RequestMetadata, source: RequestSource, placement: OutputPlacement = .init(),
        write: (_ fd: Int32, _ path: String) throws -> Void
    ) async throws -> InferenceRequest? {
        let id = metadata.inferenceId ?? ids.next()
        var metadata = metadata
        metadata.inferenceId = id
        if let reason = InferenceIDRules.validate(id) { throw SystemError(call: "submit (\(reason))", errno: EINVAL) }
        if let reason = placement.validationError() { throw SystemError(call: "submit (\(reason))", errno: EINVAL) }
        let temporary = layout.path("\(SpoolLayout.partialDirectory)/.\(id).\(owner)\(Self.submitSuffix)")
        let fd = try SystemCalls.open(temporary, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
        do {
            try write(fd, temporary)
        } catch {
            close(fd)
            _ = unlink(temporary)
            throw error
        }
        let reply = Reply<Result<InferenceRequest?, any Error>>()
        await submissions.submit(PendingSubmission(
            temporary: temporary, fd: fd, endpoint: endpoint, metadata: metadata, source: source,
            relativePath: placement.relativePath(id: id), reply: reply))
        return try await reply.value.get()
    }

    /// How long a submission waits for a failing ledger before it is refused.
    static let submissionPatience = Duration.seconds(10)

    /// The ending of a submitted payload's temporary file.
    static let submitSuffix = ".submit"

    /// A payload written in full, waiting for its group commit.
    struct PendingSubmission: Sendable {
        var temporary: String
        /// Open for writing; closed by the commit.
        var fd: Int32
        var endpoint: EndpointConfig
        var metadata: RequestMetadata
        var source: RequestSource
        /// The request's name under the endpoint's folders (its output is this plus `.out`).
        var relativePath: String
        var reply: Reply<Result<InferenceRequest?, any Error>>
    }

    /// Commits a batch of submissions: every payload's bytes reach the disk (writeback started
    /// for all, then `fdatasync` each), each is renamed into a claim, and all are recorded in one
    /// ledger transaction.
    func commitSubmissions(_ batch: [PendingSubmission], lane: BlockingLane) async {
        let claims = await lane.run { [claimer] in
            if batch.count > 1 {
                for item in batch { _ = spool_start_writeback(item.fd) }
            }
            return batch.map { item -> Result<ClaimedPayload, any Error> in
                defer { close(item.fd) }
                do {
                    try SystemCalls.fdatasync(item.fd, path: item.temporary)
                    return .success(try claimer.adopt(file: item.temporary, endpoint: item.endpoint.name, relativePath: item.relativePath))
                } catch {
                    _ = unlink(item.temporary)
                    return .failure(error)
                }
            }
        }
        var pending: [PendingRecord] = []
        var positions: [Int] = []
        for (i, (item, claim)) in zip(batch, claims).enumerated() {
            switch claim {
            case .success(let claimed):
                pending.append(PendingRecord(claimed: claimed, endpoint: item.endpoint, source: item.source, metadata: item.metadata))
                positions.append(i)
            case .failure(let error):
                item.reply.resolve(.failure(error))
            }
        }
        // The submitter waits for its answer: the ledger gets a bounded time, and a payload it
        // did not record is taken back out of the claims, so the submitter's error is the truth
        // (nothing runs later from a submission that was refused).
        let deadline = ContinuousClock.now + Self.submissionPatience
        let stored = await record(pending, giveUp: { [stopping] in stopping.load() || ContinuousClock.now >= deadline })
        for (i, (item, request)) in zip(positions, zip(pending, stored)) {
            if request == nil { try? claimer.remove(endpoint: item.endpoint.name, token: item.claimed.token) }
            batch[i].reply.resolve(.success(request))
        }
    }

    /// Removes the temporary files of submissions whose process died before it claimed them
    /// (`kill -9` during a copy): they are in no claim and no ledger row.
    func removeStaleSubmissions(isAlive: (String) -> Bool) {
        let directory = layout.path(SpoolLayout.partialDirectory)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        var alive: [String: Bool] = [owner: true]
        for name in names where name.hasPrefix(".") && name.hasSuffix(Self.submitSuffix) {
            let stem = name.dropLast(Self.submitSuffix.count)
            guard let dot = stem.lastIndex(of: ".") else { continue }
            let fileOwner = String(stem[stem.index(after: dot)...])
            let living = alive[fileOwner] ?? isAlive(fileOwner)
            alive[fileOwner] = living
            if !living {
                _ = unlink(directory + "/" + name)
                logger.notice("removed a payload copy left by a stopped process", metadata: ["spool.file": "\(name)"])
            }
        }
    }

    private static func copyStream(from input: Int32, to output: Int32, chunkBytes: Int, path: String) throws(SystemError) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkBytes, alignment: 4096)
        defer { buffer.deallocate() }
        while true {
            let n = try SystemCalls.read(input, into: buffer, path: "the payload")
            if n == 0 { return }
            try SystemCalls.writeAll(output, UnsafeRawBufferPointer(rebasing: buffer[..<n]), path: path)
        }
    }
}

/// A value one task sets and another awaits (a reply to a submission).
final class Reply<Value: Sendable>: Sendable {
    private let state = Mutex<(value: Value?, waiter: CheckedContinuation<Value, Never>?)>((nil, nil))

    /// Sets the value and wakes the waiter; later calls are ignored.
    func resolve(_ value: Value) {
        let waiter = state.withLock { s -> CheckedContinuation<Value, Never>? in
            guard s.value == nil else { return nil }
            s.value = value
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: value)
    }

    /// The value, once it is set.
    var value: Value {
        get async {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { s -> Value? in
                    if let value = s.value { return value }
                    s.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}

/// Where a submitted request's result goes, as SageMaker's `X-Amzn-SageMaker-S3OutputPathExtension`
/// and `X-Amzn-SageMaker-Filename` say: `outputs/<extension>/<filename>.out` (and
/// `errors/<extension>/<filename>.error.json`); by default `outputs/<InferenceId>.out`.
public struct OutputPlacement: Sendable, Equatable {
    /// Folders under the endpoint's outputs and errors folders (`a/b`).
    public var pathExtension: String?
    /// The result's name instead of the InferenceId.
    public var filename: String?

    public init(pathExtension: String? = nil, filename: String? = nil) {
        self.pathExtension = pathExtension
        self.filename = filename
    }

    /// Why the placement cannot be used, or nil: no empty, `.` or `..` folder, no hidden name.
    public func validationError() -> String? {
        if let pathExtension {
            let parts = pathExtension.split(separator: "/", omittingEmptySubsequences: false)
            if parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." || $0.hasPrefix(".") }) {
                return "S3OutputPathExtension must be folder names separated by single slashes, none empty, hidden, . or .."
            }
        }
        if let filename, filename.isEmpty || filename.hasPrefix(".") || filename.contains("/") {
            return "Filename must be a plain name"
        }
        return nil
    }

    func relativePath(id: String) -> String {
        [pathExtension, filename ?? id].compactMap { $0 }.joined(separator: "/")
    }
}
