import Foundation
import Logging
import SpoolCore
import SpoolIntake

#if canImport(Glibc)
import Glibc
#endif

extension SpoolEngine {
    /// Claims a dropped payload and records it. A payload that cannot run (a link, a FIFO, bad
    /// metadata, too large) is recorded as failed with a marker that says why; it is kept.
    public func admit(_ candidate: IntakeCandidate) async {
        guard let endpoint = config.endpoint(named: candidate.endpoint) else { return }
        publisher.trash.noteActivity()
        let claimed: ClaimedPayload
        do {
            guard let c = try claimer.claim(candidate, incomingDirectory: layout.path(endpoint.incomingDirectory)) else {
                return  // claimed by another process, or gone
            }
            claimed = c
        } catch {
            logger.error("could not claim a dropped file", metadata: [
                "spool.endpoint": "\(candidate.endpoint)", "spool.input": "\(candidate.relativePath)", "spool.error": "\(error)",
            ])
            return
        }
        await record(claimed, endpoint: endpoint, source: .drop, metadata: nil)
    }

    /// Records a claimed payload in the ledger and wakes a worker.
    /// - Parameter metadata: given by `invoke` or HTTP; drops read their sidecar instead.
    @discardableResult
    public func record(
        _ claimed: ClaimedPayload, endpoint: EndpointConfig, source: RequestSource, metadata given: RequestMetadata?
    ) async -> InferenceRequest? {
        var failure: Failure?
        var metadata = given ?? RequestMetadata()
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
        if given == nil, let sidecar = claimed.sidecarPath {
            switch readSidecar(sidecar) {
            case .success(let m): metadata = m
            case .failure(let f): failure = failure ?? f
            }
        }
        if failure == nil, size > endpoint.maxPayloadBytes {
            failure = Failure(.payloadTooLarge, "The payload is \(size) bytes, more than max_payload_bytes (\(endpoint.maxPayloadBytes)); the model was not called.")
        }
        let now = Date()
        var request = InferenceRequest(
            id: metadata.inferenceId ?? ids.next(now: now), endpoint: endpoint.name, source: source,
            inputPath: claimed.relativePath, claimToken: claimed.token, payloadBytes: size,
            contentType: metadata.contentType, accept: metadata.accept, customAttributes: metadata.customAttributes,
            ttlSeconds: metadata.requestTTLSeconds ?? endpoint.requestTTLSeconds,
            timeoutSeconds: metadata.invocationTimeoutSeconds ?? endpoint.invocationTimeoutSeconds,
            maxAttempts: endpoint.maxAttempts, receivedAt: now,
            outputLocation: SpoolLayout.outputLocation(endpoint: endpoint, inputPath: claimed.relativePath),
            failureLocation: SpoolLayout.failureLocation(endpoint: endpoint, inputPath: claimed.relativePath)
        )
        let stored: InferenceRequest
        do {
            do {
                stored = try await ledger.admit(request, initialFailure: failure)
            } catch LedgerError.duplicateInferenceID(let id) {
                request.id = ids.next(now: now)
                failure = Failure(.invalidRequest, "InferenceId \(id) is already used by another request.")
                stored = try await ledger.admit(request, initialFailure: failure)
            }
        } catch {
            // The claim stays on disk; recovery at the next start records it.
            logger.error("could not record a request", metadata: ["spool.input": "\(claimed.relativePath)", "spool.error": "\(error)"])
            return nil
        }
        noteHandled(stored.id)
        if stored.state.isTerminal {
            await publisher.publish(stored)
        } else {
            logger.debug("request queued", metadata: ["spool.request.id": "\(stored.id)", "spool.endpoint": "\(endpoint.name)"])
            wake(endpoint.name)
        }
        return stored
    }

    private func readSidecar(_ path: String) -> Result<RequestMetadata, Failure> {
        guard let fd = try? PayloadFile.openForReading(path) else {
            return .failure(Failure(.invalidRequest, "Invalid metadata sidecar: it is not a readable regular file."))
        }
        defer { close(fd) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while data.count <= RequestMetadata.maxSidecarBytes {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        return RequestMetadata.parseSidecar(data)
    }
}
