import Foundation
import Glibc
import SpoolCore
import Synchronization
import Testing
@testable import SpoolIntake
import SpoolTestSupport

/// A flag shared between a test and a thread it started.
final class Flag: Sendable {
    private let state = Mutex(false)
    var isSet: Bool { state.withLock { $0 } }
    func set() { state.withLock { $0 = true } }
}

/// Runs blocking `body` on its own thread (not the cooperative pool, which blocking loops would
/// starve); await `value` for its end.
func onThread(_ body: @escaping @Sendable () throws -> Void) -> Task<Void, any Error> {
    let done = AsyncThrowingStream<Void, any Error>.makeStream()
    Thread.detachNewThread {
        do {
            try body()
            done.continuation.finish()
        } catch {
            done.continuation.finish(throwing: error)
        }
    }
    return Task { for try await _ in done.stream {} }
}

/// Polls `condition` every few milliseconds until it holds or `seconds` pass. For state that has
/// no event to wait on (a folder re-created by the intake, a descriptor closed asynchronously).
func eventually(within seconds: Double = 10, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return condition()
}

/// Collects a candidate stream in the background; tests wait on conditions over what arrived,
/// each wait bounded by a deadline and woken by arrivals (no sleeping and hoping).
actor Collector {
    struct View: Sendable {
        var items: [IntakeCandidate]
        var paths: Set<String>
        var finished: Bool
        func count(of path: String) -> Int { items.count { $0.relativePath == path } }
    }

    private var view = View(items: [], paths: [], finished: false)
    private var waiters: [Int: (condition: @Sendable (View) -> Bool, continuation: CheckedContinuation<Bool, Never>)] = [:]
    private var nextWaiter = 0

    static func collecting(_ stream: AsyncStream<IntakeCandidate>) -> Collector {
        let collector = Collector()
        Task {
            for await candidate in stream { await collector.append(candidate) }
            await collector.finish()
        }
        return collector
    }

    var snapshot: View { view }

    /// Waits until `condition` holds over what arrived; `false` if `seconds` pass first.
    func wait(seconds: Double = 10, until condition: @escaping @Sendable (View) -> Bool) async -> Bool {
        if condition(view) { return true }
        let id = nextWaiter
        nextWaiter += 1
        return await withCheckedContinuation { continuation in
            waiters[id] = (condition, continuation)
            Task {
                try? await Task.sleep(for: .seconds(seconds))
                self.expire(id)
            }
        }
    }

    /// Waits until `path` has arrived.
    func wait(for path: String, seconds: Double = 10) async -> Bool {
        await wait(seconds: seconds) { $0.paths.contains(path) }
    }

    private func append(_ candidate: IntakeCandidate) {
        view.items.append(candidate)
        view.paths.insert(candidate.relativePath)
        check()
    }

    private func finish() {
        view.finished = true
        check()
    }

    private func check() {
        for (id, waiter) in waiters where waiter.condition(view) {
            waiters[id] = nil
            waiter.continuation.resume(returning: true)
        }
    }

    private func expire(_ id: Int) {
        guard let waiter = waiters.removeValue(forKey: id) else { return }
        waiter.continuation.resume(returning: waiter.condition(view))
    }
}
