import SpoolCore
import SpoolStore

/// The engine's doors, all through its `Admissions`.
extension SpoolEngine {
    typealias PendingRecord = Admissions.PendingRecord

    /// Claims dropped payloads and records them all in one ledger transaction (see
    /// `Admissions.admit`).
    public func admit(_ candidates: [IntakeCandidate]) async {
        await admissions.admit(candidates)
    }

    /// Claims dropped payloads (moves them out of their drop folders); they are recorded next.
    func claim(_ candidates: [IntakeCandidate]) -> [PendingRecord] {
        admissions.claim(candidates)
    }

    /// Records claimed payloads in one ledger transaction (see `Admissions.record`).
    @discardableResult
    func record(_ pending: [PendingRecord], giveUp: (() -> Bool)? = nil) async -> [InferenceRequest?] {
        await admissions.record(pending, giveUp: giveUp)
    }

    /// Records one claimed payload and wakes a worker.
    @discardableResult
    public func record(
        _ claimed: ClaimedPayload, endpoint: EndpointConfig, source: RequestSource, metadata given: RequestMetadata?
    ) async -> InferenceRequest? {
        await admissions.record(claimed, endpoint: endpoint, source: source, metadata: given)
    }

    /// Queues a payload read from `input` (see `Admissions.submit(from:…)`).
    public func submit(
        from input: Int32, endpoint: EndpointConfig, metadata: RequestMetadata, source: RequestSource, placement: OutputPlacement = .init()
    ) async throws -> InferenceRequest? {
        try await admissions.submit(from: input, endpoint: endpoint, metadata: metadata, source: source, placement: placement)
    }

    /// Queues a payload that `write` puts into a fresh file (see `Admissions.submit(endpoint:…)`).
    public func submit(
        endpoint: EndpointConfig, metadata: RequestMetadata, source: RequestSource, placement: OutputPlacement = .init(),
        write: (_ fd: Int32, _ path: String) throws -> Void
    ) async throws -> InferenceRequest? {
        try await admissions.submit(endpoint: endpoint, metadata: metadata, source: source, placement: placement, write: write)
    }

    /// What the engine does with each request admissions store: a worker is woken for a queued
    /// one; one that failed at admission is published at once (by this process unless the
    /// cluster's publisher does).
    func recorded(_ request: InferenceRequest) async {
        noteHandled(request.id)
        if request.state.isTerminal {
            if publishesOwnResults { await publisher.publish(request) }
        } else {
            wake(request.endpoint)
        }
    }
}
