import SpoolCore
import Testing
@testable import SpoolExecutors

/// The container scaler's rules as a value: no servers, no sleeping; the clock is a parameter.
@Suite struct ScalingPolicyTests {
    typealias Instance = ScalingPolicy.Instance
    /// A time on the pool's clock, a day after it started.
    let now = Duration.seconds(86_400)

    func policy(min: Int = 0, max: Int = 4, idle: Int = 300, slots: Int = 1) -> ScalingPolicy {
        ScalingPolicy(limits: InstanceConfig(min: min, max: max, idleSeconds: idle), slots: slots)
    }

    func ready(inFlight: Int = 0, idleFor seconds: Int = 0) -> Instance {
        Instance(phase: .ready, inFlight: inFlight, idleSince: now - .seconds(seconds))
    }

    var starting: Instance { Instance(phase: .starting, inFlight: 0, idleSince: now) }
    var stopping: Instance { Instance(phase: .stopping, inFlight: 0, idleSince: now) }

    @Test func scaleToZeroStartsOnlyForABacklog() {
        let p = policy()
        #expect(p.decide(instances: [], waiting: 0, backlog: 0, now: now) == .init())
        #expect(p.decide(instances: [], waiting: 0, backlog: 1, now: now) == .init(start: 1))
        #expect(p.decide(instances: [], waiting: 0, backlog: 100, now: now) == .init(start: 1), "one more per round, not a burst")
    }

    @Test func minIsKeptAndAnIndexBeingStoppedStaysHeld() {
        #expect(policy(min: 2).decide(instances: [], waiting: 0, backlog: 0, now: now) == .init(start: 2))
        #expect(policy(min: 2).decide(instances: [ready()], waiting: 0, backlog: 0, now: now) == .init(start: 1))
        // max 2: one index is held by an instance still stopping, so only one can start.
        #expect(policy(min: 2, max: 2).decide(instances: [stopping], waiting: 0, backlog: 0, now: now) == .init(start: 1))
        #expect(policy(min: 2, max: 2).decide(instances: [stopping, stopping], waiting: 0, backlog: 5, now: now) == .init())
    }

    @Test func oneMoreWhenTheBacklogExceedsTheFreeSlots() {
        let p = policy(max: 4, slots: 4)
        #expect(p.decide(instances: [ready(inFlight: 4)], waiting: 0, backlog: 1, now: now) == .init(start: 1))
        #expect(p.decide(instances: [ready(inFlight: 2)], waiting: 0, backlog: 2, now: now) == .init(), "2 + 2 fit in 4 slots")
        #expect(p.decide(instances: [ready(inFlight: 2)], waiting: 1, backlog: 2, now: now) == .init(start: 1), "a waiter needs a slot too")
        // An instance still starting counts as capacity: no second start for the same demand.
        #expect(policy(slots: 1).decide(instances: [starting], waiting: 0, backlog: 1, now: now) == .init())
        #expect(policy(slots: 1).decide(instances: [starting], waiting: 1, backlog: 1, now: now) == .init(start: 1))
    }

    @Test func neverMoreThanMax() {
        let p = policy(max: 2)
        #expect(p.decide(instances: [ready(inFlight: 1), ready(inFlight: 1)], waiting: 3, backlog: 10, now: now) == .init())
        #expect(p.decide(instances: [ready(inFlight: 1), starting], waiting: 3, backlog: 10, now: now) == .init())
    }

    @Test func idleInstancesAboveMinStopAfterIdleSeconds() {
        let p = policy(min: 1, idle: 60)
        // Three idle: two past the limit, one not. Both stop only if min still holds.
        let three = [ready(idleFor: 61), ready(idleFor: 10), ready(idleFor: 120)]
        #expect(p.decide(instances: three, waiting: 0, backlog: 0, now: now) == .init(stop: [0, 2]))
        // All three past the limit: the first two go, one stays for min.
        let stale = [ready(idleFor: 61), ready(idleFor: 62), ready(idleFor: 63)]
        #expect(p.decide(instances: stale, waiting: 0, backlog: 0, now: now) == .init(stop: [0, 1]))
        // Exactly at the limit counts as idle long enough.
        #expect(policy(idle: 60).decide(instances: [ready(idleFor: 60)], waiting: 0, backlog: 0, now: now) == .init(stop: [0]))
    }

    @Test func busyStartingAndStoppingInstancesAreNeverStopped() {
        let p = policy(min: 0, idle: 1)
        let instances = [ready(inFlight: 1, idleFor: 500), starting, stopping]
        #expect(p.decide(instances: instances, waiting: 0, backlog: 0, now: now) == .init())
        // Instances being stopped do not count towards min: the one idle instance stays.
        #expect(policy(min: 1, idle: 1).decide(instances: [stopping, ready(idleFor: 500)], waiting: 0, backlog: 0, now: now) == .init())
    }

    @Test func nothingIdleStopsWhileWorkIsQueuedOrWaiting() {
        // Queued work would go to the idle instance at once; stopping it would only start another.
        let p = policy(min: 0, max: 2, idle: 1)
        #expect(p.decide(instances: [ready(idleFor: 5)], waiting: 0, backlog: 2, now: now) == .init(start: 1))
        #expect(p.decide(instances: [ready(idleFor: 5)], waiting: 0, backlog: 1, now: now) == .init())
        #expect(p.decide(instances: [ready(idleFor: 5), ready(inFlight: 1)], waiting: 1, backlog: 0, now: now) == .init())
        #expect(p.decide(instances: [ready(idleFor: 5)], waiting: 0, backlog: 0, now: now) == .init(stop: [0]))
    }
}
