import ArgumentParser
import Foundation
import SpoolCore
import SpoolDaemon

/// `spool stats`: SageMaker's async-endpoint metrics per endpoint, computed from the ledger and the live
/// daemons' status files (see `EndpointMetrics` for every definition).
struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show the metrics per endpoint: backlog, throughput, failures, latencies (p50/p90/p99), instances.",
        discussion: """
            Latencies are in milliseconds, over the 10,000 most recently finished requests of each \
            endpoint. With --json: one object per endpoint, under SageMaker's metric names.
            """
    )

    @OptionGroup var options: RootOptions

    @Option(help: "Only this endpoint.")
    var endpoint: String?

    @Flag(help: "Print the Prometheus text format instead (what GET /metrics serves).")
    var prometheus = false

    func run() async throws {
        let config = try options.loadConfig()
        let ledger = try await options.openReader()
        let collector = MetricsCollector(layout: options.layout, config: config, ledger: ledger)
        var snapshot = try await collector.snapshot()
        if let endpoint {
            snapshot.endpoints = snapshot.endpoints.filter { $0.EndpointName == endpoint }
            guard !snapshot.endpoints.isEmpty else { throw CLIError.usage("unknown endpoint \(endpoint)") }
        }
        if prometheus {
            FileHandle.standardOutput.write(Data(snapshot.prometheusText().utf8))
        } else if options.json {
            snapshot.endpoints.forEach { Output.json($0) }
        } else {
            for (index, metrics) in snapshot.endpoints.enumerated() {
                if index > 0 { Output.line("") }
                show(metrics)
            }
        }
    }

    /// One endpoint as aligned `name  value` lines.
    func show(_ m: EndpointMetrics) {
        func ms(_ p: LatencyPercentiles) -> String {
            m.LatencySamples == 0 ? "-" : "p50 \(format(p.p50)) ms  p90 \(format(p.p90)) ms  p99 \(format(p.p99)) ms"
        }
        Output.line("endpoint \(m.EndpointName)")
        Output.table([
            ["  ApproximateBacklogSize", "\(m.ApproximateBacklogSize)"],
            ["  ApproximateBacklogSizePerInstance", format(m.ApproximateBacklogSizePerInstance)],
            ["  ApproximateAgeOfOldestRequest", "\(format(m.ApproximateAgeOfOldestRequest)) s"],
            ["  HasBacklogWithoutCapacity", "\(m.HasBacklogWithoutCapacity)"],
            ["  InstancesRunning", "\(m.InstancesRunning)"],
            ["  InvocationsProcessed", "\(m.InvocationsProcessed)"],
            ["  InvocationFailures", "\(m.InvocationFailures)"],
            ["  ExpiredRequests", "\(m.ExpiredRequests)"],
            ["  NotificationFailures", "\(m.NotificationFailures)"],
            ["  TimeInBacklog", ms(m.TimeInBacklog)],
            ["  ModelLatency", ms(m.ModelLatency)],
            ["  TotalProcessingTime", ms(m.TotalProcessingTime)],
            ["  LatencySamples", "\(m.LatencySamples)"],
        ])
    }

    func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(format: "%.1f", value)
    }
}
