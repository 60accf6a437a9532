import Foundation
import Prometheus
import SpoolCore

/// Computes SageMaker's async-endpoint metrics (backlog, age, latencies) from the ledger and the daemons' status files, so any
/// process can report them: `spool stats` in its own process, `GET /metrics` inside the daemon.
///
/// For the HTTP API: `try await MetricsCollector(engine: daemon.engine).prometheusText()`.
public struct MetricsCollector: Sendable {
    /// Latencies are computed over this many most recently finished requests per endpoint.
    public static let latencyWindow = 10_000

    let layout: SpoolLayout
    let config: SpoolConfig
    let ledger: any LedgerReader
    /// The calling process's own owner and live instance counts, when it runs an engine: its
    /// status file is skipped and these numbers used instead.
    let local: (owner: String, instances: @Sendable () -> [String: Int])?

    /// A collector for a process without an engine (`spool stats`): instances come from the
    /// status files of the live daemons.
    public init(layout: SpoolLayout, config: SpoolConfig, ledger: any LedgerReader) {
        self.layout = layout
        self.config = config
        self.ledger = ledger
        local = nil
    }

    /// A collector inside a running daemon: its own instances are read live.
    public init(engine: SpoolEngine) {
        layout = engine.layout
        config = engine.config
        ledger = engine.ledger
        local = (engine.owner, { DaemonStatus.instances(of: engine) })
    }

    /// The metrics now.
    public func snapshot(now: Date = Date()) async throws -> MetricsSnapshot {
        let stats = try await ledger.queueStats()
        let counters = try await ledger.counters()
        let instances = instances()
        let names = config.endpoints.map(\.name)
        let others = Set(stats.keys).union(counters.keys).subtracting(names).sorted()
        var endpoints: [EndpointMetrics] = []
        for name in names + others {
            let samples = try await ledger.latencySamples(endpoint: name, limit: Self.latencyWindow)
            endpoints.append(EndpointMetrics(
                name: name, stats: stats[name] ?? QueueStats(), counters: counters[name] ?? [:],
                instances: instances[name] ?? 0, samples: samples, now: now))
        }
        return MetricsSnapshot(time: now, endpoints: endpoints)
    }

    /// The model instances running for each endpoint, in this process and every live one on the root.
    public func instances() -> [String: Int] {
        var instances: [String: Int] = local?.instances() ?? [:]
        for status in DaemonStatus.live(layout: layout, excluding: local?.owner) {
            for (name, count) in status.instances { instances[name, default: 0] += count }
        }
        return instances
    }

    /// The metrics now in the Prometheus text exposition format (version 0.0.4), for
    /// `GET /metrics` (`Content-Type: text/plain; version=0.0.4`).
    public func prometheusText(now: Date = Date()) async throws -> String {
        try await snapshot(now: now).prometheusText()
    }
}

extension MetricsSnapshot {
    /// The Prometheus names, each labelled `endpoint="NAME"`:
    ///
    /// | metric | type | SageMaker name |
    /// |---|---|---|
    /// | `spool_approximate_backlog_size` | gauge | ApproximateBacklogSize |
    /// | `spool_approximate_backlog_size_per_instance` | gauge | ApproximateBacklogSizePerInstance |
    /// | `spool_approximate_age_of_oldest_request_seconds` | gauge | ApproximateAgeOfOldestRequest |
    /// | `spool_has_backlog_without_capacity` | gauge (0/1) | HasBacklogWithoutCapacity |
    /// | `spool_instances_running` | gauge | (instances running) |
    /// | `spool_invocations_processed_total` | counter | InvocationsProcessed |
    /// | `spool_invocation_failures_total` | counter | InvocationFailures |
    /// | `spool_expired_requests_total` | counter | ExpiredRequests |
    /// | `spool_notification_failures_total` | counter | NotificationFailures |
    /// | `spool_time_in_backlog_seconds{quantile="0.5"\|"0.9"\|"0.99"}` | gauge | TimeInBacklog |
    /// | `spool_model_latency_seconds{quantile=…}` | gauge | ModelLatency |
    /// | `spool_total_processing_time_seconds{quantile=…}` | gauge | TotalProcessingTime |
    /// | `spool_latency_samples` | gauge | (requests the quantiles cover) |
    ///
    /// Counters count the requests the ledger holds, so they drop when `spool gc` deletes old
    /// ones (Prometheus reads that as a counter reset).
    public func prometheusText() -> String {
        let registry = PrometheusCollectorRegistry()
        func describe(_ name: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        }
        func gauge(_ name: String, _ help: String, _ value: (EndpointMetrics) -> Double) {
            for e in endpoints {
                registry.makeGauge(descriptor: describe(name, help), labels: [("endpoint", e.EndpointName)]).set(value(e))
            }
        }
        func counter(_ name: String, _ help: String, _ value: (EndpointMetrics) -> Int) {
            for e in endpoints {
                registry.makeCounter(descriptor: describe(name, help), labels: [("endpoint", e.EndpointName)])
                    .increment(by: Int64(value(e)))
            }
        }
        func quantiles(_ name: String, _ help: String, _ value: (EndpointMetrics) -> LatencyPercentiles) {
            for e in endpoints {
                let p = value(e)
                for (q, ms) in [("0.5", p.p50), ("0.9", p.p90), ("0.99", p.p99)] {
                    registry.makeGauge(descriptor: describe(name, help), labels: [("endpoint", e.EndpointName), ("quantile", q)])
                        .set(ms / 1000)
                }
            }
        }
        gauge("spool_approximate_backlog_size", "Requests queued or running.") { Double($0.ApproximateBacklogSize) }
        gauge("spool_approximate_backlog_size_per_instance", "Backlog divided by the instances running (by 1 when none).") {
            $0.ApproximateBacklogSizePerInstance
        }
        gauge("spool_approximate_age_of_oldest_request_seconds", "Age of the oldest queued request.") {
            $0.ApproximateAgeOfOldestRequest
        }
        gauge("spool_has_backlog_without_capacity", "1 when requests wait and no instance runs.") {
            Double($0.HasBacklogWithoutCapacity)
        }
        gauge("spool_instances_running", "Model instances running.") { Double($0.InstancesRunning) }
        counter("spool_invocations_processed_total", "Requests that succeeded or failed.") { $0.InvocationsProcessed }
        counter("spool_invocation_failures_total", "Requests that failed.") { $0.InvocationFailures }
        counter("spool_expired_requests_total", "Requests that expired in the queue.") { $0.ExpiredRequests }
        counter("spool_notification_failures_total", "Hook and webhook deliveries that failed for good.") {
            $0.NotificationFailures
        }
        quantiles("spool_time_in_backlog_seconds", "Time from arrival to start, recent requests.") { $0.TimeInBacklog }
        quantiles("spool_model_latency_seconds", "Time from start to finish, recent requests.") { $0.ModelLatency }
        quantiles("spool_total_processing_time_seconds", "Time from arrival to finish, recent requests.") {
            $0.TotalProcessingTime
        }
        gauge("spool_latency_samples", "Finished requests the latency quantiles cover.") { Double($0.LatencySamples) }
        return registry.emitToString()
    }
}
