import Foundation
import Logging
import SpoolCore
import SpoolStore
import Synchronization

#if canImport(Glibc)
import Glibc
import SpoolSystem
#endif

/// Makes a finished request visible: its error marker, the removal of a succeeded payload, its
/// line in `events.jsonl`, and finally the ledger's `notified` flag.
///
/// Every step is idempotent but the event line, so recovery can publish again any finished
/// request whose flag is not set; recovery first looks for the id in the tail of `events.jsonl`.
public final class ResultPublisher: Sendable {
    let layout: SpoolLayout
    let config: SpoolConfig
    let ledger: any Ledger
    let logger: Logger
    let trash: Trash
    /// The newest request that published at each output path (shared with the committer).
    let newest = NewestResults()
    /// Told of every publication (notifications, metrics).
    let observers: [any PublicationObserver]
    /// `events.jsonl`.
    public let events: EventLog
    /// Ids published but not yet marked `notified`, and whether a flush is under way.
    private let unmarked = Mutex<(ids: [String], flushing: Bool)>(([], false))

    /// - Parameter folders: where emptied token folders go for reuse (default: they are removed).
    public init(
        layout: SpoolLayout, config: SpoolConfig, ledger: any Ledger, logger: Logger,
        observers: [any PublicationObserver] = [], folders: FolderPool? = nil
    ) {
        self.layout = layout
        self.config = config
        self.ledger = ledger
        self.logger = logger
        trash = Trash(layout: layout, folders: folders)
        events = EventLog(path: layout.eventsPath)
        self.observers = observers
    }

    /// Where a request's payload was dropped or submitted (absolute).
    public func inputLocation(_ request: InferenceRequest) -> String {
        guard request.source == .drop, let endpoint = config.endpoint(named: request.endpoint) else {
            return layout.path(request.claimedPayloadPath)
        }
        return layout.path("\(endpoint.incomingDirectory)/\(request.inputPath)")
    }

    /// Writes the side effects of a finished request and marks it notified.
    /// - Parameter skipEventIfLogged: recovery passes the ids already present in `events.jsonl`.
    public func publish(_ request: InferenceRequest, eventAlreadyLogged: Bool = false) async {
        guard request.state.isTerminal else { return }
        let (event, markerWritten) = writeSideEffects(request)
        let logged = eventAlreadyLogged || appendEvents([(event, request.id)])
        await announce(request, event: eventAlreadyLogged || !logged ? nil : event, complete: markerWritten && logged)
    }

    /// Publishes a batch of finished requests: the file-system side effects and one write of all
    /// their event lines on `lane` (off the cooperative pool), then observers and flags.
    func publish(_ requests: [InferenceRequest], on lane: BlockingLane) async {
        let finished = requests.filter(\.state.isTerminal)
        let (events, logged) = await lane.run { [self] in
            let effects = finished.map(writeSideEffects)
            let logged = appendEvents(zip(effects, finished).map { ($0.event, $1.id) })
            return (effects, logged)
        }
        for (request, effect) in zip(finished, events) {
            await announce(request, event: logged ? effect.event : nil, complete: effect.markerWritten && logged)
        }
    }

    /// A finished request's marker and claim removal; returns its event and whether its marker
    /// (if it needs one) was written.
    private func writeSideEffects(_ request: InferenceRequest) -> (event: NotificationEvent, markerWritten: Bool) {
        var markerWritten = true
        if request.state == .succeeded {
            if config.deleteSucceededInputs { removeClaim(request) }
        } else {
            // A newer request for the same path already published: its result stands alone.
            if newest.mayPublish(request.outputLocation, seq: request.seq) { markerWritten = writeMarker(request) }
            if !config.keepFailedInputs { removeClaim(request) }
        }
        return (event(for: request), markerWritten)
    }

    /// Tells the observers (when the event was just logged), logs, and queues the `notified`
    /// flag when everything was written (`complete`); otherwise recovery publishes the request
    /// again in a few seconds (finding its event, if that was written, in `events.jsonl`).
    private func announce(_ request: InferenceRequest, event: NotificationEvent?, complete: Bool) async {
        if let event {
            for observer in observers { await observer.published(request, event: event) }
        }
        guard complete else { return }
        markNotified(request.id)
        if request.state == .succeeded {
            if logger.logLevel <= .info {
                logger.info("request succeeded", metadata: ["spool.request.id": "\(request.id)", "spool.endpoint": "\(request.endpoint)"])
            }
        } else {
            logger.warning("request \(request.state.rawValue)", metadata: [
                "spool.request.id": "\(request.id)", "spool.endpoint": "\(request.endpoint)",
                "spool.failure.code": "\(request.failureCode?.rawValue ?? "")", "spool.failure.reason": "\(request.failureReason ?? "")",
            ])
        }
    }

    /// Sets the `notified` flags in batches: one transaction for all the requests published
    /// while the previous one ran. A flag lost to a crash only makes recovery look for the id in
    /// `events.jsonl` before publishing again.
    private func markNotified(_ id: String) {
        let start = unmarked.withLock { u in
            u.ids.append(id)
            if u.flushing { return false }
            u.flushing = true
            return true
        }
        if start { Task { await self.flushNotified() } }
    }

    private func flushNotified() async {
        while true {
            let batch = unmarked.withLock { u in
                let ids = u.ids
                u.ids = []
                if ids.isEmpty { u.flushing = false }
                return ids
            }
            if batch.isEmpty { return }
            do {
                try await ledger.markNotified(ids: batch)
            } catch {
                logger.error("could not mark requests notified", metadata: ["spool.count": "\(batch.count)", "spool.error": "\(error)"])
            }
        }
    }

    /// Waits until every published request is marked `notified` (before a process exits), at
    /// most `limit`: a flag still unset then only makes the next start look in `events.jsonl`.
    public func flush(limit: Duration = .seconds(60)) async {
        let deadline = ContinuousClock.now + limit
        while unmarked.withLock({ !$0.ids.isEmpty || $0.flushing }) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Writes the error marker; false when it could not be written (logged).
    @discardableResult
    func writeMarker(_ request: InferenceRequest) -> Bool {
        let kept = config.keepFailedInputs ? layout.path(request.claimedPayloadPath) : nil
        let marker = ErrorMarker(request: request, inputLocation: inputLocation(request), keptInputLocation: kept, failedAt: Date())
        do {
            try Markers.write(marker, to: layout.path(request.failureLocation), temporaryDirectory: layout.path(SpoolLayout.partialDirectory))
            return true
        } catch {
            logger.error("could not write the error marker; trying again shortly", metadata: [
                "spool.request.id": "\(request.id)", "spool.error": "\(error)",
            ])
            return false
        }
    }

    func removeClaim(_ request: InferenceRequest) {
        trash.discard(
            layout.path(request.claimDirectory), payload: layout.path(request.claimedPayloadPath),
            bytes: request.payloadBytes, succeeded: request.state == .succeeded, mayHaveSidecar: request.source == .drop)
    }

    /// The event of a finished request, as `events.jsonl`, the hooks and the webhook all get it:
    /// with `responseBody` when the endpoint sets `include_inference_response` and the output of
    /// a success is at most `maxEmbeddedResponseBytes`.
    func event(for request: InferenceRequest) -> NotificationEvent {
        var event = NotificationEvent(
            request: request, inputLocation: inputLocation(request),
            outputLocation: layout.path(request.outputLocation), failureLocation: layout.path(request.failureLocation),
            eventTime: request.finishedAt ?? Date()
        )
        if request.state == .succeeded, config.endpoint(named: request.endpoint)?.notifications.includeInferenceResponse == true {
            event.responseBody = embeddedResponse(layout.path(request.outputLocation))
        }
        return event
    }

    /// SageMaker embeds outputs up to 128 KB in the notification.
    public static let maxEmbeddedResponseBytes = 128 * 1024

    /// The output at `path` as base64, when it exists and is small enough.
    func embeddedResponse(_ path: String) -> NotificationEvent.ResponseBody? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG,
              info.st_size <= off_t(Self.maxEmbeddedResponseBytes),
              let data = FileManager.default.contents(atPath: path),
              data.count <= Self.maxEmbeddedResponseBytes
        else { return nil }
        return NotificationEvent.ResponseBody(content: data.base64EncodedString(), encoding: "BASE64")
    }

    /// Appends the events' lines in one write (see `EventLog`); false when they could not be
    /// written (logged: recovery publishes them again shortly).
    @discardableResult
    func appendEvents(_ events: [(NotificationEvent, id: String)]) -> Bool {
        guard let first = events.first else { return true }
        var lines = Data()
        for (event, _) in events { lines.append(event.jsonLine()) }
        do {
            try self.events.append(lines) { repair in
                logger.warning("cut off a torn last line of events.jsonl", metadata: ["spool.bytes": "\(repair.bytesCut)"])
            }
            return true
        } catch {
            logger.error("could not append events; trying again shortly", metadata: [
                "spool.request.id": "\(first.id)", "spool.count": "\(events.count)", "spool.error": "\(error)",
            ])
            return false
        }
    }

    /// Inference ids that appear in the last `bytes` of `events.jsonl`.
    func recentlyLoggedIDs(bytes: Int = 1 << 20) -> Set<String> {
        events.recentIDs(bytes: bytes)
    }
}
