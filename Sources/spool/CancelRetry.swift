import ArgumentParser
import Foundation
import SpoolCore
import SpoolDaemon

#if canImport(Glibc)
import Glibc
#endif

struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Stop a queued or running request (its model is stopped; marker Cancelled)."
    )

    @OptionGroup var options: RootOptions

    @OptionGroup var request: RequestIDArgument
    var id: String { request.id }

    func run() async throws {
        let config = try options.loadConfig()
        let ledger = try await options.openLedger()
        let before = try await ledger.request(id: id)
        let cancelled: InferenceRequest?
        do {
            cancelled = try await ledger.cancel(id: id, now: Date())
        } catch LedgerError.conflict(let reason) {
            throw CLIError.failure(reason)
        }
        guard let cancelled else { throw RequestIDArgument.unknown(id) }
        if before?.state == .queued, config.ledgerURL == nil {
            // Nobody runs it: its marker and event are ours to write. A running request's
            // worker notices the cancel within a second, stops the model and writes them. With
            // PostgreSQL the cluster's publisher writes them.
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
        commandName: "retry",
        abstract: "Queue a failed, expired or cancelled request again, from its kept input."
    )

    @OptionGroup var options: RootOptions

    @OptionGroup var request: RequestIDArgument
    var id: String { request.id }

    func run() async throws {
        let ledger = try await options.openLedger()
        let retried: InferenceRequest
        do {
            switch try await Retention.retry(id: id, layout: options.layout, ledger: ledger, now: Date()) {
            case .queued(let request): retried = request
            case .unknown: throw RequestIDArgument.unknown(id, "never queued, or removed by gc or retain_finished")
            case .inputNotKept:
                throw CLIError.failure("the input of \(id) was not kept (removed by gc, or keep_failed_inputs = false); drop it again instead")
            }
        } catch LedgerError.conflict(let reason) {
            throw CLIError.failure(reason)
        }
        if options.json {
            struct Line: Encodable { var InferenceId: String; var State: String }
            Output.json(Line(InferenceId: retried.id, State: retried.state.rawValue))
        } else {
            Output.line("\(retried.id)  queued again (a running `spool serve` or the next `spool drain` runs it)")
        }
    }
}
