import Synchronization
import Testing

@testable import SpoolDaemon

/// The group commit queue: what arrives while a batch is committed forms the next batch, in
/// order, never larger than the limit; `idle` waits for everything submitted.
@Suite struct BatchQueueTests {
    /// A latch the commit waits on, opened by the test.
    final class Gate: Sendable {
        private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

        func wait() async {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let open = state.withLock { s in
                    if !s.open { s.waiters.append(c) }
                    return s.open
                }
                if open { c.resume() }
            }
        }

        func open() {
            state.withLock { s in
                s.open = true
                let waiters = s.waiters
                s.waiters = []
                return waiters
            }.forEach { $0.resume() }
        }
    }

    @Test("entries submitted during a commit form the next batch, in order", .timeLimit(.minutes(1)))
    func entriesDuringACommitFormTheNextBatch() async {
        let gate = Gate()
        let started = Gate()
        let batches = Mutex<[[Int]]>([])
        let queue = BatchQueue<Int>(limit: 100) { batch in
            started.open()
            await gate.wait()
            batches.withLock { $0.append(batch) }
        }
        await queue.submit(0)
        await started.wait()  // the first batch, [0], is being committed
        for i in 1...10 { await queue.submit(i) }
        gate.open()
        await queue.idle()
        #expect(batches.withLock { $0 } == [[0], Array(1...10)])
    }

    @Test("a full queue makes submitters wait; no batch exceeds the limit; idle waits for all", .timeLimit(.minutes(1)))
    func backPressure() async {
        let gate = Gate()
        let batches = Mutex<[[Int]]>([])
        let queue = BatchQueue<Int>(limit: 4) { batch in
            await gate.wait()
            batches.withLock { $0.append(batch) }
        }
        let submitted = Atomic<Int>(0)
        let producer = Task {
            for i in 0..<20 {
                await queue.submit(i)
                submitted.add(1, ordering: .relaxed)
            }
        }
        // While the first commit is held, at most one batch (up to 4) plus a full queue (4)
        // can have been accepted, plus the one submitter parked with its entry.
        while submitted.load(ordering: .relaxed) < 4 { await Task.yield() }
        #expect(submitted.load(ordering: .relaxed) <= 8)
        gate.open()
        await producer.value
        await queue.idle()
        let seen = batches.withLock { $0 }
        #expect(seen.flatMap { $0 } == Array(0..<20))
        #expect(seen.allSatisfy { $0.count <= 4 })
        #expect(seen.count >= 5)
    }
}
