import SpoolCore

/// Hears about every request the publisher makes visible (its marker and event written), for
/// notifications (hooks, webhook) and metrics. Observers must not block: they queue their own
/// work; a failing observer never holds up the queue.
public protocol PublicationObserver: Sendable {
    /// - Parameters:
    ///   - request: the finished request.
    ///   - event: its line in `events.jsonl`, as written.
    func published(_ request: InferenceRequest, event: NotificationEvent) async
}
