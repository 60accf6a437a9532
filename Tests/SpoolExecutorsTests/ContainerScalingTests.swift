import Foundation
import SpoolCore
import SpoolTestSupport
import Testing
@testable import SpoolExecutors

#if canImport(Glibc)
import Glibc
#endif

/// Container instances seen through the process table: cold start from zero, scale-out,
/// idle scale-in, `min` instances, and shutdown (SIGTERM, then SIGKILL after the grace period).
/// Where time decides (idle scale-in, rounds with nothing queued) the scaler runs on a clock the
/// test moves.
@Suite struct ContainerScalingTests {
    typealias Support = ContainerTestSupport

    @Test func coldStartFromZero() async throws {
        let clock = ManualClock()
        let executor = try Support.executor(min: 0, clock: clock)
        defer { Task { await executor.shutdown() } }
        let scaler = try await Support.start(executor, context: Support.context())
        defer { scaler.cancel() }
        // The scaler's rounds with nothing queued, an hour apart: nothing starts.
        for _ in 1...3 {
            #expect(await clock.waitForSleepers(1), "the scaler waits for its next round on the clock")
            clock.advance(by: .seconds(3600))
        }
        #expect(await clock.waitForSleepers(1), "and has done its rounds")
        #expect(await executor.pool.instanceCount() == 0, "not even one starting")
        #expect(await executor.pool.processIDs().isEmpty)
        #expect(executor.instancesRunning == 0)

        let fixture = try InvocationFixture(payload: Array("first".utf8))
        #expect(try await fixture.run(executor).0 == .succeeded)
        #expect(fixture.output == Array("first".utf8))
        let pids = await executor.pool.processIDs()
        #expect(pids.count == 1)
        #expect(pids.allSatisfy(Support.isAlive))
        #expect(executor.instancesRunning == 1)
    }

    @Test func idleInstancesScaleInToZero() async throws {
        let clock = ManualClock()
        let executor = try Support.executor(min: 0, idleSeconds: 60, clock: clock)
        defer { Task { await executor.shutdown() } }
        let scaler = try await Support.start(executor, context: Support.context())
        defer { scaler.cancel() }
        let fixture = try InvocationFixture(payload: Array("x".utf8))
        #expect(try await fixture.run(executor).0 == .succeeded)
        let pid = try #require(await executor.pool.processIDs().first)
        #expect(await clock.waitForSleepers(1))
        clock.advance(by: .seconds(59))
        #expect(await clock.waitForSleepers(1), "a round 59 s into the idle time")
        #expect(await executor.pool.readyIndices() == [0], "is not stopped one second short of idle_seconds")
        #expect(Support.isAlive(pid))
        clock.advance(by: .seconds(1))
        #expect(await Support.eventually(within: .seconds(15)) { !Support.isAlive(pid) })
        #expect(await Support.eventually { executor.instancesRunning == 0 })

        // The next request cold-starts a new instance.
        #expect(try await fixture.run(executor).0 == .succeeded)
        let next = try #require(await executor.pool.processIDs().first)
        #expect(next != pid)
    }

    @Test func minInstancesStartWithTheExecutorAndStay() async throws {
        let clock = ManualClock()
        let executor = try Support.executor(min: 1, max: 2, idleSeconds: 0, clock: clock)
        defer { Task { await executor.shutdown() } }
        let scaler = try await Support.start(executor, context: Support.context())
        defer { scaler.cancel() }
        // Bounded like the instance's start-up (30 s): a machine busy with other tests may take
        // seconds to spawn the server.
        #expect(await Support.eventually(within: .seconds(30)) { await executor.pool.processIDs().count == 1 })
        let pid = try #require(await executor.pool.processIDs().first)
        #expect(await Support.eventually(within: .seconds(30)) { await executor.pool.readyIndices() == [0] })
        // The scaler's rounds, an hour apart (idle_seconds is 0): min keeps it.
        for _ in 1...3 {
            #expect(await clock.waitForSleepers(1))
            clock.advance(by: .seconds(3600))
        }
        #expect(await clock.waitForSleepers(1))
        #expect(await executor.pool.readyIndices() == [0], "not being stopped")
        #expect(Support.isAlive(pid))
        #expect(await executor.pool.processIDs() == [pid])
    }

    @Test func concurrentRequestsScaleOutToMaxOnePortEach() async throws {
        let executor = try Support.executor(max: 2, slots: 1)
        defer { Task { await executor.shutdown() } }
        async let a = Self.slowRequest(executor)
        async let b = Self.slowRequest(executor)
        // Two Python servers starting while the rest of the suite runs on two cores: allow time.
        #expect(await Support.eventually(within: .seconds(30)) { await executor.pool.processIDs().count == 2 })
        let results = try await [a, b]
        #expect(results == [.succeeded, .succeeded])
        #expect(Set(await executor.pool.processIDs()).count == 2)
    }

    @Test func backlogScalesOutAheadOfRequests() async throws {
        let executor = try Support.executor(min: 0, max: 2)
        defer { Task { await executor.shutdown() } }
        let scaler = try await Support.start(executor, context: Support.context(backlog: 5))
        defer { scaler.cancel() }
        #expect(await Support.eventually(within: .seconds(30)) { await executor.pool.processIDs().count == 2 })
    }

    @Test func shutdownLeavesNoServerProcess() async throws {
        let executor = try Support.executor(max: 2, slots: 1)
        async let a = Self.slowRequest(executor)
        async let b = Self.slowRequest(executor)
        _ = try await (a, b)
        let pids = await executor.pool.processIDs()
        #expect(pids.count == 2)
        await executor.shutdown()
        for pid in pids { #expect(!Support.isAlive(pid)) }
        #expect(executor.instancesRunning == 0)
    }

    @Test func aServerIgnoringSIGTERMIsKilledAfterTheGracePeriod() async throws {
        // `trap '' TERM` is inherited across exec: python3 then ignores SIGTERM.
        let serve = ["sh", "-c", "trap '' TERM; exec python3 \"$0\" echo", Support.serveScript]
        let executor = try Support.executor(serve: serve, grace: .milliseconds(800))
        let fixture = try InvocationFixture(payload: Array("x".utf8))
        #expect(try await fixture.run(executor).0 == .succeeded)
        let pid = try #require(await executor.pool.processIDs().first)
        let started = ContinuousClock.now
        await executor.shutdown()
        let took = ContinuousClock.now - started
        #expect(!Support.isAlive(pid))
        #expect(took >= .milliseconds(700))
        #expect(took < .seconds(10))
    }

    /// One request the example server takes a second over.
    static func slowRequest(_ executor: ContainerExecutor) async throws -> AttemptResult {
        let fixture = try InvocationFixture(payload: Array("1".utf8))
        return try await fixture.run(metadata: executor, customAttributes: "mode=slow,seconds=1").0
    }
}
