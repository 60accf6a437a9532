import Foundation
import Logging
import SpoolCore
import SpoolIntake

#if canImport(Glibc)
import Glibc
import SpoolSystem
#endif

extension SpoolEngine {
    /// Claims dropped payloads and records them all in one ledger transaction. A payload that
    /// cannot run (a link, a FIFO, bad metadata, too large) is recorded as failed with a marker
    /// that says why; it is kept.
    public func admit(_ candidates: [IntakeCandidate]) async {
        await record(claim(candidates))
    }

    /// Claims dropped payloads (moves them out of their drop folders); they are recorded next.
    func claim(_ candidates: [IntakeCandidate]) -> [PendingRecord] {
        publisher.trash.noteActivity()
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
        let now = Date()
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
            noteHandled(request.id)
            if request.state.isTerminal {
                if publishesOwnResults { await publisher.publish(request) }
            } else {
                logger.debug("request queued", metadata: ["spool.request.id": "\(request.id)", "spool.endpoint": "\(request.endpoint)"])
                wake(request.endpoint)
            }
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
}
