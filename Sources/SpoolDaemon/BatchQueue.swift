import Synchronization

/// Group commit: items wait here while the previous batch is being processed, and are then
/// processed together. Finished attempts go through one (their outputs flushed together, one
/// fsync per output folder, one ledger transaction), and so do dropped files (one ledger
/// transaction for a burst), so a burst costs a few disk flushes and thread hand-offs per batch
/// instead of several per file. Producers hand over an item and go on; a full queue makes them
/// wait (back-pressure).
final class BatchQueue<Entry: Sendable>: Sendable {
    /// Entries waiting beyond this make `submit` wait.
    let limit: Int
    private let commit: @Sendable ([Entry]) async -> Void

    private struct State {
        var entries: [Entry] = []
        var committing = false
        /// Submitters waiting for room, with their entries.
        var blocked: [(Entry, CheckedContinuation<Void, Never>)] = []
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// - Parameter commit: commits one batch (called for one batch at a time, in order).
    init(limit: Int = 256, commit: @escaping @Sendable ([Entry]) async -> Void) {
        self.limit = max(1, limit)
        self.commit = commit
    }

    /// Queues `entry` for the next batch; waits only while the queue is full.
    func submit(_ entry: Entry) async {
        // The common case takes the lock once and does not suspend.
        if let start = enqueue(entry, parking: nil) {
            if start { Task { await self.drain() } }
            return
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            guard let start = enqueue(entry, parking: continuation) else { return }  // resumed when there is room
            if start { Task { await self.drain() } }
            continuation.resume()
        }
    }

    /// Appends `entry` and returns whether the caller must start a drain; when the queue is full,
    /// parks `waiter` with the entry (if given) and returns nil.
    private func enqueue(_ entry: Entry, parking waiter: CheckedContinuation<Void, Never>?) -> Bool? {
        state.withLock { s in
            if s.entries.count >= limit {
                if let waiter { s.blocked.append((entry, waiter)) }
                return nil
            }
            s.entries.append(entry)
            if s.committing { return false }
            s.committing = true
            return true
        }
    }

    /// Waits until everything submitted so far is committed.
    func idle() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { s -> Bool in
                if s.entries.isEmpty && !s.committing { return true }
                s.idleWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }

    private func drain() async {
        while true {
            let (batch, unblocked, idleWaiters) = state.withLock { s in
                let batch = s.entries
                let room = min(s.blocked.count, limit)
                let unblocked = s.blocked.prefix(room)
                s.blocked.removeFirst(room)
                s.entries = unblocked.map(\.0)
                var idleWaiters: [CheckedContinuation<Void, Never>] = []
                if batch.isEmpty {
                    s.committing = false
                    idleWaiters = s.idleWaiters
                    s.idleWaiters = []
                }
                return (batch, unblocked.map(\.1), idleWaiters)
            }
            unblocked.forEach { $0.resume() }
            if batch.isEmpty {
                idleWaiters.forEach { $0.resume() }
                return
            }
            await commit(batch)
        }
    }
}
