import ArgumentParser
import Foundation
import SpoolCore
import SpoolDaemon

#if canImport(Glibc)
import Glibc
#endif

struct Wait: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait",
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
        let ledger = try await options.openReader()
        let publisher = options.publisher(ledger: ledger, config: config)
        let waiter = RequestWaiter(ledger: ledger, publishedOnly: config.ledgerURL != nil)
        var progress = WaitProgress(ids: ids)
        defer { progress.end() }
        let outcome: RequestWaiter.Outcome
        do {
            outcome = try await waiter.wait(
                for: ids, timeout: timeout.map { .milliseconds(Int($0 * 1000)) },
                saw: { progress.saw($0) }, round: { progress.draw(finished: $0, of: $1) })
        } catch let unknown as RequestWaiter.UnknownRequest {
            throw CLIError.usage(unknown.description)
        }
        progress.end()
        switch outcome {
        case .finished(let requests):
            for request in requests { report(request, publisher: publisher) }
            if requests.contains(where: { $0.state != .succeeded }) { throw ExitCode(1) }
        case .timedOut(let requests):
            for request in requests where !waiter.isDone(request) { report(request, publisher: publisher) }
            throw ExitCode(124)
        }
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

/// What `spool wait` shows on standard error while it waits (standard output keeps only the
/// final report). On a terminal: one redrawn line, ~5 times a second, with a progress bar from
/// the bytes the model has consumed when one request is waited on, or a count of finished
/// requests for several. Otherwise: one plain line per state change of each request until it
/// finishes (`ID  queued`, `ID  running`); how it finished is the report's.
struct WaitProgress {
    let ids: [String]
    let terminal = isatty(STDERR_FILENO) == 1
    private var states: [String: RequestState] = [:]
    private var latest: InferenceRequest?
    private var lastDraw: ContinuousClock.Instant?
    private var drawn = false

    init(ids: [String]) {
        self.ids = ids
    }

    /// Notes a request's current state; off a terminal, prints a line when it changed.
    mutating func saw(_ request: InferenceRequest) {
        if request.id == ids.first { latest = request }
        guard states[request.id] != request.state else { return }
        states[request.id] = request.state
        // Finished states are the report's, on standard output.
        if !terminal && !request.state.isTerminal { Self.write("\(request.id)  \(request.state.rawValue)\n") }
    }

    /// Redraws the line on a terminal, at most every 200 ms.
    mutating func draw(finished: Int, of total: Int) {
        guard terminal else { return }
        let now = ContinuousClock.now
        if let lastDraw, now - lastDraw < .milliseconds(200), finished < total { return }
        lastDraw = now
        var line: String
        if total == 1, let r = latest {
            let done = r.state == .succeeded ? r.payloadBytes : r.bytesProcessed
            let shown = r.payloadBytes > 0 ? min(1, Double(done) / Double(r.payloadBytes)) : (r.state == .succeeded ? 1 : 0)
            let width = 30
            let filled = Int((shown * Double(width)).rounded(.down))
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            line = "\(r.id)  \(r.state.rawValue)  [\(bar)] \(Int(shown * 100))%  \(Self.bytes(done)) of \(Self.bytes(r.payloadBytes))"
        } else {
            let running = states.values.filter { $0 == .running }.count
            line = "\(finished) of \(total) finished, \(running) running"
        }
        if line.count > 120 { line = String(line.prefix(120)) }
        Self.write("\r\u{1B}[2K" + line)
        drawn = true
    }

    /// Clears the line (before the report on standard output).
    mutating func end() {
        if drawn { Self.write("\r\u{1B}[2K") }
        drawn = false
    }

    static func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB"]
        var value = Double(n), unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(n) B" : String(format: "%.1f", value) + " " + units[unit]
    }
}

struct Cat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cat", abstract: "Write a request's output to standard output (exit 1 unless it succeeded).")

    @OptionGroup var options: RootOptions

    @OptionGroup var requestID: RequestIDArgument

    func run() async throws {
        let ledger = try await options.openReader()
        let request = try await requestID.request(in: ledger)
        let id = request.id
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
