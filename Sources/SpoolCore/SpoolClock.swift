import Foundation

/// The time the engine, its services and the model-server scaler go by: `clock` for waits and
/// durations (invocation timeouts, the services' rounds, idle instances), `now` for the
/// wall-clock instants the ledger keeps (arrival, TTL expiry, finish). Tests pass one built on a
/// clock they move, and nothing they check waits in real time.
public struct SpoolClock: Sendable {
    public let clock: any Clock<Duration>
    public let now: @Sendable () -> Date
    /// The time on `clock` since this value was made: a monotonic instant to compare and subtract.
    public let uptime: @Sendable () -> Duration

    public init<C: Clock<Duration>>(clock: C, now: @escaping @Sendable () -> Date) {
        self.clock = clock
        self.now = now
        let start = clock.now
        uptime = { start.duration(to: clock.now) }
    }

    /// Real time.
    public static let system = SpoolClock(clock: ContinuousClock(), now: { Date() })

    /// Sleeps `duration` on the clock; false when cancelled.
    @discardableResult
    public func sleep(for duration: Duration) async -> Bool {
        (try? await clock.sleep(for: duration, tolerance: nil)) != nil
    }

    /// A stopwatch started now: each call answers the time since.
    public func stopwatch() -> @Sendable () -> Duration {
        let start = uptime()
        return { [uptime] in uptime() - start }
    }
}
