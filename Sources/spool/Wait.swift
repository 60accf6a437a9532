import ArgumentParser
import Foundation
import SpoolCore
import SpoolDaemon

struct Wait: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Block until requests finish (0 all succeeded, 1 any did not, 124 on timeout)."
    )

    @OptionGroup var options: RootOptions

    @Argument(help: "Inference ids.")
    var ids: [String]

    @Option(help: ArgumentHelp("Give up after this many seconds (exit 124).", valueName: "seconds"))
    var timeout: Double?

    func validate() throws {
        if ids.isEmpty { throw ValidationError("name at least one inference id") }
        if let timeout, timeout < 0 { throw ValidationError("--timeout must not be negative") }
    }

    func run() async throws {
        let config = try options.loadConfig()
        let ledger = try options.openLedger()
        let publisher = options.publisher(ledger: ledger, config: config)
        let deadline = timeout.map { ContinuousClock.now + .milliseconds(Int($0 * 1000)) }
        var finished: [String: InferenceRequest] = [:]
        while true {
            for id in ids where finished[id] == nil {
                guard let request = try await ledger.request(id: id) else {
                    throw CLIError.usage("unknown inference id \(id)")
                }
                if request.state.isTerminal { finished[id] = request }
            }
            if finished.count == Set(ids).count { break }
            if let deadline, ContinuousClock.now >= deadline {
                for id in ids where finished[id] == nil {
                    if let r = try await ledger.request(id: id) { report(r, publisher: publisher) }
                }
                throw ExitCode(124)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        for id in ids { report(finished[id]!, publisher: publisher) }
        if finished.values.contains(where: { $0.state != .succeeded }) { throw ExitCode(1) }
    }

    func report(_ r: InferenceRequest, publisher: ResultPublisher) {
        let view = RequestView(r, publisher: publisher)
        if options.json {
            Output.json(view)
        } else {
            let location = r.state == .succeeded ? view.OutputLocation : (r.state.isTerminal ? view.FailureLocation : "-")
            Output.line("\(r.id)  \(r.state.rawValue)  \(location)")
        }
    }
}

struct Cat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a request's output to standard output (exit 1 unless it succeeded).")

    @OptionGroup var options: RootOptions

    @Argument(help: "The inference id.")
    var id: String

    func run() async throws {
        let ledger = try options.openLedger()
        guard let request = try await ledger.request(id: id) else { throw CLIError.usage("unknown inference id \(id)") }
        guard request.state == .succeeded else {
            var message = "request \(id) is \(request.state.rawValue)"
            if let reason = request.failureReason { message += ": \(reason)" }
            throw CLIError.failure(message)
        }
        let path = options.layout.path(request.outputLocation)
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CLIError.failure("the output of \(id) is no longer at \(path)")
        }
        defer { try? handle.close() }
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            FileHandle.standardOutput.write(chunk)
        }
    }
}
