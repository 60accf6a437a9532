import Foundation
import Hummingbird
import Logging
import SpoolCore
import SpoolDaemon
import Synchronization

#if canImport(Glibc)
import Glibc
import SpoolSystem
#endif

/// Serves `POST /endpoints/{EndpointName}/async-invocations` on a running engine: validates,
/// opens the payload (InputLocation or body), queues it with `SpoolEngine.submit` and answers
/// 202 with where the result and the error marker will appear.
final class AsyncInvocations: Sendable {
    let engine: SpoolEngine
    let resolver: InputResolver
    let state: ServerState
    let logger: Logger
    /// InferenceIds being submitted now, so that two requests with one id queue it once.
    private let submitting = Mutex<Set<String>>([])
    /// The queue's length for the `max_queued` check.
    private let queuedCount = QueuedCount()

    init(engine: SpoolEngine, state: ServerState, logger: Logger) {
        self.engine = engine
        self.state = state
        self.logger = logger
        resolver = InputResolver(layout: engine.layout, http: engine.config.http, buckets: engine.config.effectiveBuckets)
    }

    func handle(_ request: Request, endpointName: String) async throws -> Response {
        guard !state.isStopping, !engine.isStopping else {
            throw APIError.unavailable("Spool is stopping; try again once it is running.")
        }
        let invocation = try InvokeEndpointAsyncRequest.parse(endpoint: endpointName, headers: request.headers)
        guard let endpoint = engine.config.endpoint(named: invocation.endpoint) else {
            let known = engine.config.endpoints.map(\.name).sorted().joined(separator: ", ")
            throw APIError.validation("Endpoint \(invocation.endpoint) not found (configured: \(known)).")
        }
        let scheme: LocationScheme
        var input: Int32 = -1
        let body = try await Self.collectBody(request)
        if let location = invocation.inputLocation {
            guard body.readableBytes == 0 else {
                throw APIError.validation("Give the payload either as InputLocation or as the request body, not both.")
            }
            (input, scheme) = try resolver.open(location)
        } else {
            guard body.readableBytes > 0 else {
                throw APIError.validation("InputLocation is required (or send a payload of up to \(InvokeEndpointAsyncRequest.maxInlineBytes) bytes as the body).")
            }
            scheme = .inline
        }
        defer { if input >= 0 { close(input) } }
        let id = invocation.metadata.inferenceId
        if let id { await lock(id) }
        defer { if let id { unlock(id) } }
        if let id, let existing = try await existingRequest(id) {
            return try accepted(existing, endpoint: endpoint, scheme: scheme)
        }
        try await checkCapacity()
        let queued: InferenceRequest?
        do {
            if input >= 0 {
                queued = try await engine.submit(
                    from: input, endpoint: endpoint, metadata: invocation.metadata, source: .http, placement: invocation.placement)
            } else {
                // The body is written once, straight into the file that becomes the claim.
                queued = try await engine.submit(
                    endpoint: endpoint, metadata: invocation.metadata, source: .http, placement: invocation.placement
                ) { fd, path in
                    try Self.write(body, to: fd, path: path)
                }
            }
        } catch {
            throw APIError.internalFailure("The payload could not be queued: \(error)")
        }
        guard var request = queued else { throw APIError.internalFailure("The request could not be recorded in the ledger.") }
        if request.state == .queued { queuedCount.add() }
        if let id, request.id != id, let existing = try await existingRequest(id) {
            request = existing  // another process recorded this id first
        }
        logger.debug("request queued over HTTP", metadata: ["spool.request.id": "\(request.id)", "spool.endpoint": "\(endpoint.name)"])
        return try accepted(request, endpoint: endpoint, scheme: scheme)
    }

    private func accepted(_ request: InferenceRequest, endpoint: EndpointConfig, scheme: LocationScheme) throws -> Response {
        guard request.endpoint == endpoint.name else {
            throw APIError.validation("InferenceId \(request.id) is already used by a request on endpoint \(request.endpoint).")
        }
        let layout = engine.layout
        return InvocationAccepted.response(
            id: request.id,
            output: resolver.location(of: layout.path(request.outputLocation), scheme: scheme),
            failure: resolver.location(of: layout.path(request.failureLocation), scheme: scheme)
        )
    }

    private func existingRequest(_ id: String) async throws -> InferenceRequest? {
        do {
            return try await engine.ledger.request(id: id)
        } catch {
            throw APIError.internalFailure("The ledger could not be read: \(error)")
        }
    }

    /// 503 when `[http] max_queued` requests are already waiting.
    private func checkCapacity() async throws {
        // A recent count under the limit answers at once; at the limit the ledger decides.
        let queued: Int
        if let known = queuedCount.fresh(at: .now), known < engine.config.http.maxQueued {
            queued = known
        } else {
            let stats: [String: QueueStats]
            do { stats = try await engine.ledger.queueStats() } catch {
                throw APIError.internalFailure("The ledger could not be read: \(error)")
            }
            queued = stats.values.reduce(0) { $0 + $1.count(.queued) }
            queuedCount.read(queued, at: .now)
        }
        if queued >= engine.config.http.maxQueued {
            throw APIError.unavailable("The queue is full (\(queued) requests waiting, [http] max_queued = \(engine.config.http.maxQueued)); try again later.")
        }
    }

    /// The body, refused past `InvokeEndpointAsyncRequest.maxInlineBytes`.
    static func collectBody(_ request: Request) async throws -> ByteBuffer {
        let limit = InvokeEndpointAsyncRequest.maxInlineBytes
        let tooLarge = APIError.validation("The request body is larger than \(limit) bytes; put the payload in a file and pass its InputLocation.")
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit { throw tooLarge }
        var buffer = ByteBuffer()
        for try await chunk in request.body {
            guard buffer.readableBytes + chunk.readableBytes <= limit else { throw tooLarge }
            buffer.writeImmutableBuffer(chunk)
        }
        return buffer
    }

    /// Writes an inline body to `fd`.
    static func write(_ body: ByteBuffer, to fd: Int32, path: String) throws {
        var failure: SystemError?
        body.withUnsafeReadableBytes { bytes in
            do throws(SystemError) { try SystemCalls.writeAll(fd, bytes, path: path) } catch { failure = error }
        }
        if let failure { throw APIError.internalFailure("Cannot write the body: \(failure).") }
    }

    private func lock(_ id: String) async {
        while !submitting.withLock({ $0.insert(id).inserted }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    private func unlock(_ id: String) {
        _ = submitting.withLock { $0.remove(id) }
    }
}

/// The number of queued requests, as the `max_queued` check needs it: read from the ledger at
/// most once every `freshness` while the queue is below the limit (a read transaction per
/// invocation cost several percent of the API's processor time) and counted up by each request
/// this server queued since. Within `freshness` it misses what other processes queued, and
/// still counts what was claimed: a count at the limit is therefore always read again.
final class QueuedCount: Sendable {
    static let freshness = Duration.milliseconds(20)
    private let state = Mutex<(count: Int, readAt: ContinuousClock.Instant)?>(nil)

    /// The count, when the last read is recent enough.
    func fresh(at now: ContinuousClock.Instant) -> Int? {
        state.withLock { known in
            guard let known, now - known.readAt < Self.freshness else { return nil }
            return known.count
        }
    }

    /// Remembers a count read from the ledger.
    func read(_ count: Int, at now: ContinuousClock.Instant) {
        state.withLock { $0 = (count, now) }
    }

    /// Notes one more queued request.
    func add() {
        state.withLock { known in known?.count += 1 }
    }
}

/// What every handler needs to know about the server's life.
final class ServerState: Sendable {
    private let stopping = Atomic<Bool>(false)

    /// True once graceful shutdown began: new invocations get 503, `/ping` too.
    var isStopping: Bool { stopping.load(ordering: .acquiring) }

    func markStopping() { stopping.store(true, ordering: .releasing) }
}
