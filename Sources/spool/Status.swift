import ArgumentParser
import Foundation
import SpoolCore
import SpoolDaemon

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show one request, or the queue: counts by state, backlog, oldest age.")

    @OptionGroup var options: RootOptions

    @Argument(help: "An inference id (omit for the queue).")
    var id: String?

    func run() async throws {
        let config = try options.loadConfig()
        let ledger = try await options.openReader()
        let publisher = options.publisher(ledger: ledger, config: config)
        if let id {
            guard let request = try await ledger.request(id: id) else { throw RequestIDArgument.unknown(id) }
            let view = RequestView(request, publisher: publisher)
            if options.json {
                Output.json(view)
                return
            }
            var rows: [[String]] = [
                ["InferenceId", view.InferenceId], ["Endpoint", view.EndpointName], ["State", view.State],
                ["Input", view.InputLocation], ["Bytes", "\(view.BytesProcessed) of \(view.PayloadBytes)"],
                ["Attempts", "\(view.Attempts)"], ["Received", view.ReceivedTime],
            ]
            if let t = view.StartedTime { rows.append(["Started", t]) }
            if let t = view.FinishedTime { rows.append(["Finished", t]) }
            if request.state == .succeeded { rows.append(["Output", view.OutputLocation]) }
            if let code = view.FailureCode {
                rows.append(["Failure", "\(code): \(view.FailureReason ?? "")"])
                rows.append(["Marker", view.FailureLocation])
            }
            Output.table(rows)
            return
        }
        let stats = try await ledger.queueStats()
        let now = Date()
        struct EndpointStatus: Encodable {
            var EndpointName: String
            var Queued: Int, Running: Int, Succeeded: Int, Failed: Int, Expired: Int, Cancelled: Int
            var ApproximateBacklogSize: Int
            var ApproximateAgeOfOldestRequest: Double
        }
        let names = Set(config.endpoints.map(\.name)).union(stats.keys).sorted()
        let rows = names.map { name -> EndpointStatus in
            let s = stats[name] ?? QueueStats()
            return EndpointStatus(
                EndpointName: name, Queued: s.count(.queued), Running: s.count(.running), Succeeded: s.count(.succeeded),
                Failed: s.count(.failed), Expired: s.count(.expired), Cancelled: s.count(.cancelled),
                ApproximateBacklogSize: s.count(.queued) + s.count(.running),
                ApproximateAgeOfOldestRequest: s.oldestQueuedAt.map { max(0, now.timeIntervalSince($0)) } ?? 0
            )
        }
        if options.json {
            rows.forEach { Output.json($0) }
            return
        }
        var table = [["ENDPOINT", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "EXPIRED", "CANCELLED", "OLDEST"]]
        for r in rows {
            table.append([
                r.EndpointName, "\(r.Queued)", "\(r.Running)", "\(r.Succeeded)", "\(r.Failed)", "\(r.Expired)", "\(r.Cancelled)",
                r.Queued > 0 ? String(format: "%.1fs", r.ApproximateAgeOfOldestRequest) : "-",
            ])
        }
        Output.table(table)
    }
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List requests, newest first.")

    @OptionGroup var options: RootOptions

    @Option(help: "Only requests in this state (queued, running, succeeded, failed, expired, cancelled).")
    var state: String?

    @Option(help: "Only requests of this endpoint.")
    var endpoint: String?

    @Option(help: "At most this many.")
    var limit = 50

    func validate() throws {
        if let state, RequestState(rawValue: state) == nil {
            throw ValidationError("unknown state \"\(state)\" (known: \(RequestState.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        if limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        let config = try options.loadConfig()
        let ledger = try await options.openReader()
        let publisher = options.publisher(ledger: ledger, config: config)
        let states = state.flatMap(RequestState.init(rawValue:)).map { [$0] }
        let requests = try await ledger.list(LedgerQuery(states: states, endpoint: endpoint, limit: limit))
        if options.json {
            requests.forEach { Output.json(RequestView($0, publisher: publisher)) }
            return
        }
        var table = [["INFERENCE ID", "ENDPOINT", "STATE", "BYTES", "RECEIVED", "INPUT"]]
        for r in requests {
            table.append([r.id, r.endpoint, r.state.rawValue, "\(r.payloadBytes)", Timestamp.string(r.receivedAt), r.inputPath])
        }
        Output.table(table)
    }
}
