import CSpoolSystem
import Foundation
import Logging
import SpoolCore
import SpoolStore
import SpoolSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Admission: claimed payloads become ledger rows. Drops arrive claimed (`claim`), submitted
/// payloads (`spool invoke`, the HTTP API) are written once to a temporary file, made durable and
/// claimed in groups (`submit`); both are recorded in one ledger transaction per batch
/// (`record`), and each stored request is handed to `recorded` (the engine wakes a worker, or
/// publishes a request that failed at admission).
///
/// It needs no model and no worker: `spool invoke` queues through `Admissions.standalone`
/// without building an engine.
public final class Admissions: Sendable {
    let layout: SpoolLayout
    let config: SpoolConfig
    let ledger: any Ledger
    let claimer: PayloadClaimer
    let ids: InferenceIDGenerator
    let owner: String
    let logger: Logger
    /// Set when graceful shutdown begins: a ledger that fails is then no longer waited for.
    let stopping: AtomicFlag
    /// Told of every request stored.
    let recorded: @Sendable (InferenceRequest) async -> Void
    /// Told that payloads are arriving (the trash waits for a quiet queue).
    let activity: @Sendable () -> Void
    /// The wall clock arrivals are recorded by (a request's TTL counts from its arrival).
    let now: @Sendable () -> Date
    /// Submitted payloads on their way to a claim and the ledger.
    let submissions: BatchQueue<PendingSubmission>
    /// The lock that proves `owner` alive, when these admissions hold it themselves.
    private let ownerLock: OwnerLock?

    init(
        layout: SpoolLayout, config: SpoolConfig, ledger: any Ledger, claimer: PayloadClaimer, ids: InferenceIDGenerator,
        owner: String, logger: Logger, stopping: AtomicFlag, ownerLock: OwnerLock? = nil, now: @escaping @Sendable () -> Date = SpoolClock.system.now,
        activity: @escaping @Sendable () -> Void = {}, recorded: @escaping @Sendable (InferenceRequest) async -> Void
    ) {
        self.layout = layout
        self.config = config
        self.ledger = ledger
        self.claimer = claimer
        self.ids = ids
        self.owner = owner
        self.logger = logger
        self.stopping = stopping
        self.ownerLock = ownerLock
        self.now = now
        self.activity = activity
        self.recorded = recorded
        let lane = BlockingLane("spool.submit")
        let admissions = WeakReference<Admissions>()
        submissions = BatchQueue(limit: 256) { batch in await admissions.value?.commitSubmissions(batch, lane: lane) }
        admissions.value = self
    }

    /// Admissions of their own, for a process that only queues (`spool invoke`): an owner (and its
    /// lock file, so that a daemon's recovery leaves the claims it is making alone), no engine.
    public static func standalone(layout: SpoolLayout, config: SpoolConfig, ledger: any Ledger, logger: Logger) throws -> Admissions {
        for directory in [SpoolLayout.partialDirectory, SpoolLayout.claimedDirectory] {
            try SystemCalls.makeDirectories(layout.path(directory))
        }
        let ids = InferenceIDGenerator()
        let lock = try OwnerLock(layout: layout, owner: OwnerLock.newOwnerName(ids: ids))
        let claimer = PayloadClaimer(layout: layout, ids: ids, owner: lock.owner, syncsDirectories: false)
        // A request refused at admission (too large, say) gets its marker and event at once,
        // unless the cluster's publisher writes them (PostgreSQL).
        let publisher = ledger is any LeasingLedger ? nil : ResultPublisher(layout: layout, config: config, ledger: ledger, logger: logger)
        return Admissions(
            layout: layout, config: config, ledger: ledger, claimer: claimer, ids: ids, owner: lock.owner, logger: logger,
            stopping: AtomicFlag(), ownerLock: lock,
            recorded: { request in if request.state.isTerminal { await publisher?.publish(request) } })
    }

    /// Claims dropped payloads and records them all in one ledger transaction. A payload that
    /// cannot run (a link, a FIFO, bad metadata, too large) is recorded as failed with a marker
    /// that says why; it is kept.
    public func admit(_ candidates: [IntakeCandidate]) async {
        await record(claim(candidates))
    }

    /// Claims dropped payloads (moves them out of their drop folders); they are recorded next.
    func claim(_ candidates: [IntakeCandidate]) -> [PendingRecord] {
        activity()
        var claims: [PendingRecord] = []
        for candidate in candidates {
            guard let endpoint = config.endpoint(named: candidate.endpoint) else { continue }
            do {
                guard let claimed = try claimer.claim(candidate, incomingDirectory: layout.path(endpoint.incomingDirectory)) else {
                    continue  // claimed by another process, or gone
                }
                claims.append(PendingRecord(claimed: claimed, endpoint: endpoint, source: .drop, metadata: nil))
            } catch {
                logger.error("could not claim a dropped file", metadata: [
                    "spool.endpoint": "\(candidate.endpoint)", "spool.input": "\(candidate.relativePath)", "spool.error": "\(error)",
                ])
            }
        }
        return claims
    }

    /// A claimed payload on its way into the ledger.
    struct PendingRecord: Sendable {
        var claimed: ClaimedPayload
        var endpoint: EndpointConfig
        var source: RequestSource
        /// Given by `invoke` or HTTP; drops read their sidecar instead.
        var metadata: RequestMetadata?
    }

    /// Records a claimed payload in the ledger and wakes a worker.
    /// - Parameter metadata: given by `invoke` or HTTP; drops read their sidecar instead.
    @discardableResult
    public func record(
        _ claimed: ClaimedPayload, endpoint: EndpointConfig, source: RequestSource, metadata given: RequestMetadata?
    ) async -> InferenceRequest? {
        await record([PendingRecord(claimed: claimed, endpoint: endpoint, source: source, metadata: given)]).first ?? nil
    }

    /// Records claimed payloads in one ledger transaction (two when an InferenceId is taken: that
    /// request is then recorded under a fresh id as failed), publishes those that failed at once
    /// and wakes workers for the rest. A ledger that fails (a full disk, a lock held too long) is
    /// tried again until it records them, or until `giveUp` (default: graceful shutdown) says to
    /// stop. Returns the stored requests, nil where it gave up: the claims then stay on disk, and
    /// recovery records them once this process has stopped.
    @discardableResult
    func record(_ pending: [PendingRecord], giveUp: (() -> Bool)? = nil) async -> [InferenceRequest?] {
        if pending.isEmpty { return [] }
        let now = now()
        let admissions = pending.map { admission(for: $0, now: now) }
        let giveUp = giveUp ?? stopping.load
        let what = "recording \(pending.count) claimed payloads"
        guard var outcomes = await persistently(what, logger: logger, giveUp: giveUp, { try await ledger.admit(admissions) }) else {
            for item in pending {
                logger.error("a claimed payload is not recorded yet; it is recorded once this process has stopped", metadata: [
                    "spool.input": "\(item.claimed.relativePath)", "spool.claim": "\(item.claimed.token)",
                ])
            }
            return pending.map { _ in nil }
        }
        // An InferenceId already taken: recorded under a fresh id, as failed.
        var retried: [Int] = []
        var retries: [Admission] = []
        for (i, outcome) in outcomes.enumerated() {
            guard case .failure(.duplicateInferenceID(let id)) = outcome else { continue }
            var retry = admissions[i]
            retry.request.id = ids.next(now: now)
            retry.initialFailure = Failure(.invalidRequest, "InferenceId \(id) is already used by another request.")
            retried.append(i)
            retries.append(retry)
        }
        if !retries.isEmpty,
           let second = await persistently(what, logger: logger, giveUp: giveUp, { try await ledger.admit(retries) }) {
            for (i, outcome) in zip(retried, second) { outcomes[i] = outcome }
        }
        let stored = outcomes.map { try? $0.get() }
        for (item, request) in zip(pending, stored) {
            guard let request else {
                logger.error("could not record a request", metadata: ["spool.input": "\(item.claimed.relativePath)"])
                continue
            }
            if !request.state.isTerminal {
                logger.debug("request queued", metadata: ["spool.request.id": "\(request.id)", "spool.endpoint": "\(request.endpoint)"])
            }
            await recorded(request)
        }
        return stored
    }

    /// The row a claimed payload becomes: queued, or failed when it cannot run (not a regular
    /// file, bad sidecar, too large).
    private func admission(for item: PendingRecord, now: Date) -> Admission {
        let claimed = item.claimed
        let endpoint = item.endpoint
        var failure: Failure?
        var metadata = item.metadata ?? RequestMetadata()
        var size: Int64 = 0
        switch claimed.kind {
        case .regular(let bytes):
            size = bytes
        case .symlink:
            failure = Failure(.invalidRequest, "The dropped entry is a symbolic link; Spool reads only regular files and never follows links.")
        case .fifo:
            failure = Failure(.invalidRequest, "The dropped entry is a FIFO; Spool reads only regular files.")
        case .directory:
            failure = Failure(.invalidRequest, "The dropped entry is a directory; Spool reads only regular files.")
        case .other:
            failure = Failure(.invalidRequest, "The dropped entry is a device or socket; Spool reads only regular files.")
        }
        if item.metadata == nil, let sidecar = claimed.sidecarPath {
            switch readSidecar(sidecar) {
            case .success(let m): metadata = m
            case .failure(let f): failure = failure ?? f
            }
        }
        if failure == nil, size > endpoint.maxPayloadBytes {
            failure = Failure(.payloadTooLarge, "The payload is \(size) bytes, more than max_payload_bytes (\(endpoint.maxPayloadBytes)); the model was not called.")
        }
        let request = InferenceRequest(
            id: metadata.inferenceId ?? ids.next(now: now), endpoint: endpoint.name, source: item.source,
            inputPath: claimed.relativePath, claimToken: claimed.token, payloadBytes: size,
            contentType: metadata.contentType, accept: metadata.accept, customAttributes: metadata.customAttributes,
            ttlSeconds: metadata.requestTTLSeconds ?? endpoint.requestTTLSeconds,
            timeoutSeconds: metadata.invocationTimeoutSeconds ?? endpoint.invocationTimeoutSeconds,
            maxAttempts: endpoint.maxAttempts, receivedAt: now,
            outputLocation: SpoolLayout.outputLocation(endpoint: endpoint, inputPath: claimed.relativePath),
            failureLocation: SpoolLayout.failureLocation(endpoint: endpoint, inputPath: claimed.relativePath)
        )
        return Admission(request, initialFailure: failure)
    }

    private func readSidecar(_ path: String) -> Result<RequestMetadata, Failure> {
        guard let fd = try? PayloadFile.openForReading(path) else {
            return .failure(Failure(.invalidRequest, "Invalid metadata sidecar: it is not a readable regular file."))
        }
        defer { close(fd) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while data.count <= RequestMetadata.maxSidecarBytes {
            guard let n = try? buffer.withUnsafeMutableBytes({ bytes throws(SystemError) in try SystemCalls.read(fd, into: bytes) }),
                  n > 0 else { break }
            data.append(contentsOf: buffer[0..<n])
        }
        return RequestMetadata.parseSidecar(data)
    }

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
            // Every payload is flushed before any is moved: flushing a new file also writes its
            // folder (ext4 without a journal), and a move in between would make each flush write
            // it again.
            let flushed = batch.map { item -> (any Error)? in
                defer { close(item.fd) }
                do { try SystemCalls.fdatasync(item.fd, path: item.temporary) } catch { return error }
                return nil
            }
            return zip(batch, flushed).map { item, failure -> Result<ClaimedPayload, any Error> in
                do {
                    if let failure { throw failure }
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
