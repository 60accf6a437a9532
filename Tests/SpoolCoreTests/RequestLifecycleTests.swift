import Testing
@testable import SpoolCore

@Suite struct RequestLifecycleTests {
    let lifecycle = RequestLifecycle(maxAttempts: 3)

    @Test func queuedRequestIsClaimedIntoRunning() {
        #expect(lifecycle.apply(.claim, to: .queued, attempts: 0) == .moveTo(.running))
    }

    @Test func queuedRequestExpires() {
        #expect(lifecycle.apply(.expire, to: .queued, attempts: 0) == .moveTo(.expired))
    }

    @Test func runningRequestDoesNotExpire() {
        guard case .refuse = lifecycle.apply(.expire, to: .running, attempts: 1) else {
            Issue.record("a running request must not expire")
            return
        }
    }

    @Test func runningRequestSucceeds() {
        #expect(lifecycle.apply(.succeed, to: .running, attempts: 1) == .moveTo(.succeeded))
    }

    @Test func retryableFailureWithAttemptsLeftGoesBackToQueue() {
        #expect(lifecycle.apply(.fail(code: .modelError, retryable: true), to: .running, attempts: 2) == .moveTo(.queued))
    }

    @Test func retryableFailureOnLastAttemptFails() {
        #expect(lifecycle.apply(.fail(code: .modelError, retryable: true), to: .running, attempts: 3) == .moveTo(.failed))
    }

    @Test func permanentFailureFailsAtOnce() {
        #expect(lifecycle.apply(.fail(code: .invocationTimeout, retryable: false), to: .running, attempts: 1) == .moveTo(.failed))
    }

    @Test func interruptedRequestGoesBackToQueue() {
        #expect(lifecycle.apply(.interrupt, to: .running, attempts: 1) == .moveTo(.queued))
    }

    @Test(arguments: [RequestState.queued, .running])
    func unfinishedRequestCanBeCancelled(state: RequestState) {
        #expect(lifecycle.apply(.cancel, to: state, attempts: 0) == .moveTo(.cancelled))
    }

    @Test(arguments: [RequestState.succeeded, .failed, .expired, .cancelled])
    func finishedRequestCannotBeCancelled(state: RequestState) {
        guard case .refuse = lifecycle.apply(.cancel, to: state, attempts: 1) else {
            Issue.record("cancel of \(state) must be refused")
            return
        }
    }

    @Test(arguments: [RequestState.failed, .expired, .cancelled])
    func failedRequestCanBeRetried(state: RequestState) {
        #expect(lifecycle.apply(.retry, to: state, attempts: 1) == .moveTo(.queued))
    }

    @Test(arguments: [RequestState.queued, .running, .succeeded])
    func otherRequestsCannotBeRetried(state: RequestState) {
        guard case .refuse = lifecycle.apply(.retry, to: state, attempts: 1) else {
            Issue.record("retry of \(state) must be refused")
            return
        }
    }

    @Test(arguments: [RequestState.succeeded, .failed, .expired, .cancelled])
    func finishedRequestIsNotClaimedAgain(state: RequestState) {
        guard case .refuse = lifecycle.apply(.claim, to: state, attempts: 1) else {
            Issue.record("claim of \(state) must be refused")
            return
        }
    }

    @Test func terminalStatesAreExactlyTheFinalOnes() {
        #expect(RequestState.allCases.filter(\.isTerminal) == [.succeeded, .failed, .expired, .cancelled])
    }
}

@Suite struct InferenceIDTests {
    @Test func idsAreUniqueAndSortByArrival() {
        let generator = InferenceIDGenerator()
        let ids = (0..<10_000).map { _ in generator.next() }
        #expect(Set(ids).count == ids.count)
        #expect(ids == ids.sorted())
        #expect(ids.allSatisfy { $0.count == 26 && InferenceIDRules.validate($0) == nil })
    }

    @Test func laterMillisecondsSortLater() {
        let generator = InferenceIDGenerator()
        let early = generator.next(now: .init(timeIntervalSince1970: 1_700_000_000))
        let late = generator.next(now: .init(timeIntervalSince1970: 1_700_000_001))
        #expect(early < late)
    }

    @Test(arguments: ["", String(repeating: "a", count: 65), "has space", "tab\t", "é", "/../../../x", "a/b", ".", "..",
                      ".sidecar.json", ".hidden"])
    func invalidUserIdsAreRefused(id: String) {
        #expect(InferenceIDRules.validate(id) != nil)
    }
}
