import Synchronization

/// Wakes idle workers when work arrives. A ring with no one waiting is remembered (up to a bound),
/// so a worker that checks the queue and then waits never misses it.
final class Doorbell: Sendable {
    private struct State {
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var pending = 0
        var nextID: UInt64 = 0
        /// Rings so far.
        var rings: UInt64 = 0
    }

    private let state = Mutex(State())
    private let maxPending: Int

    init(maxPending: Int) {
        self.maxPending = max(1, maxPending)
    }

    /// How many times it has rung so far: a worker notes it before it looks at the queue (see
    /// `wait(timeout:after:)`).
    var rings: UInt64 { state.withLock { $0.rings } }

    /// Workers waiting now (for tests).
    var waiting: Int { state.withLock { $0.waiters.count } }

    /// Wakes one waiting worker, or remembers the ring.
    func ring() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.rings += 1
            if let (id, c) = s.waiters.first {
                s.waiters[id] = nil
                return c
            }
            s.pending = min(s.pending + 1, maxPending)
            return nil
        }
        waiter?.resume()
    }

    /// Wakes every waiting worker (shutdown).
    func ringAll() {
        let waiters = state.withLock { s in
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        waiters.forEach { $0.resume() }
    }

    /// Returns on a ring, after `timeout`, or on cancellation, whichever comes first.
    /// - Parameter seen: `rings` as the caller read it before it found the queue empty. Rings
    ///   remembered up to then announced work that the look already saw taken (by another worker,
    ///   often a whole batch in one claim), so they are forgotten instead of sending the caller
    ///   back to the ledger for nothing; a ring since returns at once.
    func wait(timeout: Duration, after seen: UInt64? = nil) async {
        let id = state.withLock { s -> UInt64? in
            if s.pending > 0 {
                if let seen, s.rings <= seen {
                    s.pending = 0
                } else {
                    s.pending -= 1
                    return nil
                }
            }
            s.nextID += 1
            return s.nextID
        }
        guard let id else { return }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let cancelled = state.withLock { s in
                    if Task.isCancelled { return true }
                    s.waiters[id] = c
                    return false
                }
                if cancelled { c.resume(); return }
                Task {
                    try? await Task.sleep(for: timeout)
                    self.resume(id)
                }
            }
        } onCancel: {
            resume(id)
        }
    }

    private func resume(_ id: UInt64) {
        let waiter = state.withLock { s in s.waiters.removeValue(forKey: id) }
        waiter?.resume()
    }
}
