import Testing

@testable import SpoolDaemon

/// Waking idle workers: a ring is never missed, and rings a worker's empty look already
/// answered do not send it back to the ledger.
@Suite(.timeLimit(.minutes(1))) struct DoorbellTests {
    /// Waits (bounded, without sleeping) until `bell` has `count` waiters.
    static func waitForWaiters(_ bell: Doorbell, _ count: Int) async throws {
        for _ in 0..<1_000_000 where bell.waiting != count { await Task.yield() }
        try #require(bell.waiting == count)
    }

    @Test func aRingWithNoOneWaitingIsRememberedForTheNextWait() async {
        let bell = Doorbell(maxPending: 4)
        bell.ring()
        await bell.wait(timeout: .seconds(600))  // returns at once: the ring was remembered
        let seen = bell.rings
        bell.ring()
        await bell.wait(timeout: .seconds(600), after: seen)  // rang after the look: at once too
        #expect(bell.waiting == 0)
    }

    @Test func ringsBeforeAnEmptyLookAreForgottenAndTheWorkerWaitsForTheNextOne() async throws {
        let bell = Doorbell(maxPending: 4)
        bell.ring()
        bell.ring()
        bell.ring()
        let seen = bell.rings  // a worker looks now and finds the queue empty
        let worker = Task { await bell.wait(timeout: .seconds(600), after: seen) }
        try await Self.waitForWaiters(bell, 1)  // it waits instead of consuming the three old rings
        bell.ring()
        await worker.value
        #expect(bell.waiting == 0)
        // Nothing is remembered from before: the next look-then-wait waits too.
        let again = Task { await bell.wait(timeout: .seconds(600), after: bell.rings) }
        try await Self.waitForWaiters(bell, 1)
        bell.ring()
        await again.value
    }

    @Test func withoutALookEveryRememberedRingReturnsOnce() async throws {
        let bell = Doorbell(maxPending: 2)
        for _ in 0..<5 { bell.ring() }  // remembered up to maxPending
        await bell.wait(timeout: .seconds(600))
        await bell.wait(timeout: .seconds(600))
        let third = Task { await bell.wait(timeout: .seconds(600)) }
        try await Self.waitForWaiters(bell, 1)
        bell.ring()
        await third.value
    }
}
