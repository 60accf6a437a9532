import Foundation
import Logging
import SpoolCore
import SpoolIntake
import Synchronization

#if canImport(Glibc)
import Glibc
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
    /// Told of every publication (notifications, metrics).
    let observers: [any PublicationObserver]
    private let events = Mutex<Int32>(-1)
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
        self.observers = observers
    }

    deinit {
        events.withLock { fd in if fd >= 0 { close(fd) } }
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
        let event = writeSideEffects(request)
        if !eventAlreadyLogged { appendEvents([(event, request.id)]) }
        await announce(request, event: eventAlreadyLogged ? nil : event)
    }

    /// Publishes a batch of finished requests: the file-system side effects and one write of all
    /// their event lines on `lane` (off the cooperative pool), then observers and flags.
    func publish(_ requests: [InferenceRequest], on lane: BlockingLane) async {
        let finished = requests.filter(\.state.isTerminal)
        let events = await lane.run { [self] in
            let events = finished.map { (writeSideEffects($0), $0.id) }
            appendEvents(events)
            return events.map(\.0)
        }
        for (request, event) in zip(finished, events) { await announce(request, event: event) }
    }

    /// A finished request's marker and claim removal; returns its event.
    private func writeSideEffects(_ request: InferenceRequest) -> NotificationEvent {
        if request.state == .succeeded {
            if config.deleteSucceededInputs { removeClaim(request) }
        } else {
            writeMarker(request)
            if !config.keepFailedInputs { removeClaim(request) }
        }
        return event(for: request)
    }

    /// Tells the observers (when the event was just logged), queues the `notified` flag, logs.
    private func announce(_ request: InferenceRequest, event: NotificationEvent?) async {
        if let event {
            for observer in observers { await observer.published(request, event: event) }
        }
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

    func writeMarker(_ request: InferenceRequest) {
        let kept = config.keepFailedInputs ? layout.path(request.claimedPayloadPath) : nil
        let marker = ErrorMarker(request: request, inputLocation: inputLocation(request), keptInputLocation: kept, failedAt: Date())
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            var data = try encoder.encode(marker)
            data.append(0x0A)
            try Posix.writeAtomically(data, to: layout.path(request.failureLocation), temporaryDirectory: layout.path(SpoolLayout.partialDirectory))
        } catch {
            logger.error("could not write the error marker", metadata: ["spool.request.id": "\(request.id)", "spool.error": "\(error)"])
        }
    }

    func removeClaim(_ request: InferenceRequest) {
        trash.discard(
            layout.path(request.claimDirectory), payload: layout.path(request.claimedPayloadPath),
            bytes: request.payloadBytes, succeeded: request.state == .succeeded)
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

    /// Appends one line with a single `write` on an `O_APPEND` descriptor, so lines from several
    /// processes never interleave.
    func appendEvents(_ events: [(NotificationEvent, id: String)]) {
        guard !events.isEmpty else { return }
        var lines = Data()
        for (event, _) in events { lines.append(event.jsonLine()) }
        self.events.withLock { fd in
            if fd < 0 {
                fd = (try? Posix.open(layout.eventsPath, O_WRONLY | O_APPEND | O_CREAT)) ?? -1
            }
            guard fd >= 0 else {
                logger.error("could not open events.jsonl", metadata: ["spool.request.id": "\(events[0].id)", "spool.count": "\(events.count)"])
                return
            }
            do {
                try Posix.writeAll(fd, lines, layout.eventsPath)
            } catch {
                logger.error("could not append events", metadata: ["spool.request.id": "\(events[0].id)", "spool.count": "\(events.count)", "spool.error": "\(error)"])
            }
        }
    }

    /// Inference ids that appear in the last `bytes` of `events.jsonl`.
    func recentlyLoggedIDs(bytes: Int = 1 << 20) -> Set<String> {
        guard let handle = FileHandle(forReadingAtPath: layout.eventsPath) else { return [] }
        defer { try? handle.close() }
        let end = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: end > UInt64(bytes) ? end - UInt64(bytes) : 0)
        guard let data = try? handle.readToEnd() else { return [] }
        var ids = Set<String>()
        let decoder = JSONDecoder()
        for line in data.split(separator: 0x0A) {
            if let event = try? decoder.decode(NotificationEvent.self, from: line) { ids.insert(event.inferenceId) }
        }
        return ids
    }
}
