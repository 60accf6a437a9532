import ArgumentParser
import Foundation
import SpoolCore
import SpoolDaemon

#if canImport(Glibc)
import Glibc
#endif

struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop a queued or running request (its model is stopped; marker Cancelled)."
    )

    @OptionGroup var options: RootOptions

    @Argument(help: "The inference id.")
    var id: String

    func run() async throws {
        let config = try options.loadConfig()
        let ledger = try options.openLedger()
        let before = try await ledger.request(id: id)
        let cancelled: InferenceRequest?
        do {
            cancelled = try await ledger.cancel(id: id, now: Date())
        } catch LedgerError.conflict(let reason) {
            throw CLIError.failure(reason)
        }
        guard let cancelled else { throw CLIError.usage("unknown inference id \(id)") }
        if before?.state == .queued {
            // Nobody runs it: its marker and event are ours to write. A running request's
            // worker notices the cancel within a second, stops the model and writes them.
            let publisher = options.publisher(ledger: ledger, config: config)
            await publisher.publish(cancelled)
            await publisher.flush()
        }
        report(cancelled, wasRunning: before?.state == .running)
    }

    func report(_ r: InferenceRequest, wasRunning: Bool) {
        if options.json {
            struct Line: Encodable { var InferenceId: String; var State: String }
            Output.json(Line(InferenceId: r.id, State: r.state.rawValue))
        } else {
            Output.line("\(r.id)  cancelled\(wasRunning ? " (its model is being stopped)" : "")")
        }
    }
}

struct Retry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Queue a failed, expired or cancelled request again, from its kept input."
    )

    @OptionGroup var options: RootOptions

    @Argument(help: "The inference id.")
    var id: String

    func run() async throws {
        let ledger = try options.openLedger()
        guard let request = try await ledger.request(id: id) else { throw CLIError.usage("unknown inference id \(id)") }
        let payload = options.layout.path(request.claimedPayloadPath)
        var info = stat()
        guard lstat(payload, &info) == 0 else {
            throw CLIError.failure("the input of \(id) was not kept (removed by gc, or keep_failed_inputs = false); drop it again instead")
        }
        let retried: InferenceRequest?
        do {
            retried = try await ledger.retry(id: id, now: Date())
        } catch LedgerError.conflict(let reason) {
            throw CLIError.failure(reason)
        }
        guard let retried else { throw CLIError.usage("unknown inference id \(id)") }
        // `spool gc` (or retention) may have removed the input between the look above and the
        // retry: then the request cannot run, and saying it was queued would be untrue.
        guard lstat(payload, &info) == 0 else {
            throw CLIError.failure("the input of \(id) was removed while it was being retried; it will fail with InputUnreadable")
        }
        if options.json {
            struct Line: Encodable { var InferenceId: String; var State: String }
            Output.json(Line(InferenceId: retried.id, State: retried.state.rawValue))
        } else {
            Output.line("\(retried.id)  queued again (a running `spool serve` or the next `spool drain` runs it)")
        }
    }
}
