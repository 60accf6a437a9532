import Logging

/// Runs a ledger write again, with growing pauses, until it succeeds or `giveUp` says to stop:
/// a full disk or a ledger locked by another process for longer than its busy timeout must
/// delay a claimed payload or a finished attempt, never strand it.
///
/// - Returns: the result, or nil when it gave up (the caller leaves things for recovery).
func persistently<T: Sendable>(
    _ what: String, logger: Logger, giveUp: () -> Bool,
    clock: any Clock<Duration> = ContinuousClock(), _ body: () async throws -> T
) async -> T? {
    var pause = Duration.milliseconds(100)
    var failures = 0
    while true {
        do {
            let result = try await body()
            if failures > 0 { logger.notice("\(what): done after \(failures) failed tries") }
            return result
        } catch {
            failures += 1
            if failures == 1 || failures % 10 == 0 {
                logger.error("\(what) failed; trying again", metadata: ["spool.error": "\(error)", "spool.tries": "\(failures)"])
            }
            if giveUp() { return nil }
            try? await clock.sleep(for: pause)
            pause = min(pause * 2, .seconds(5))
        }
    }
}
