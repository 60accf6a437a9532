import Testing
@testable import SpoolHTTP

/// The queue length the `max_queued` check uses between ledger reads.
@Suite struct QueuedCountTests {
    @Test func aReadIsUsedForItsFreshnessAndCountedUpByWhatIsQueued() {
        let count = QueuedCount()
        let start = ContinuousClock.now
        #expect(count.fresh(at: start) == nil, "nothing read yet: the ledger is asked")
        count.add()
        #expect(count.fresh(at: start) == nil, "what is queued before any read counts nothing")
        count.read(5, at: start)
        count.add()
        count.add()
        #expect(count.fresh(at: start + .milliseconds(1)) == 7)
        #expect(count.fresh(at: start + QueuedCount.freshness - .milliseconds(1)) == 7)
        #expect(count.fresh(at: start + QueuedCount.freshness) == nil, "stale: the ledger is asked again")
        count.read(0, at: start + QueuedCount.freshness)
        #expect(count.fresh(at: start + QueuedCount.freshness) == 0)
    }
}
