import ArgumentParser
import Foundation
import SpoolCore
import SpoolDaemon

/// The ledger alone, for `scripts/bench`: how many requests per second `workers` concurrent
/// workers claim and finish, one at a time each, on the ledger of the root (its `[ledger] url`
/// or `SPOOL_LEDGER_URL`, else its SQLite file). Not for users.
struct BenchLedger: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-ledger",
        abstract: "Internal: claims and finishes per second of the ledger alone.",
        shouldDisplay: false
    )

    @OptionGroup var options: RootOptions

    @Option(help: "Concurrent workers.")
    var workers = 1

    @Option(help: "Requests to admit, claim and finish.")
    var requests = 5000

    func run() async throws {
        let ledger = try await options.openLedger()
        let run = UUID().uuidString.prefix(8)
        let now = Date()
        for start in stride(from: 0, to: requests, by: 500) {
            let admissions = (start..<min(start + 500, requests)).map { i in
                Admission(InferenceRequest(
                    id: "bench-\(run)-\(i)", endpoint: "bench-\(run)", source: .invoke, inputPath: "bench/\(i)",
                    claimToken: "bench-\(run)-\(i)", payloadBytes: 1024, ttlSeconds: 3600, timeoutSeconds: 900, maxAttempts: 1,
                    receivedAt: now, outputLocation: "outputs/bench/\(i).out", failureLocation: "errors/bench/\(i).error.json"))
            }
            _ = try await ledger.admit(admissions)
        }
        let clock = ContinuousClock()
        let started = clock.now
        let done = try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var count = 0
                    while let claimed = try await ledger.claimNext(endpoints: ["bench-\(run)"], owner: "bench-\(run)-\(worker)", now: Date()).claimed {
                        _ = try await ledger.finish(id: claimed.id, owner: "bench-\(run)-\(worker)", result: .succeeded, now: Date())
                        count += 1
                    }
                    return count
                }
            }
            return try await group.reduce(0, +)
        }
        let elapsed = clock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        _ = try await ledger.delete(ids: (0..<requests).map { "bench-\(run)-\($0)" })
        Output.line(String(format: #"{"workers": %d, "requests": %d, "per_second": %.1f}"#, workers, done, Double(done) / seconds))
    }
}
