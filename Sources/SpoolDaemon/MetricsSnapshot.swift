import Foundation
import SpoolCore

/// Three percentiles of a latency, in milliseconds (0 when there is no sample).
public struct LatencyPercentiles: Sendable, Codable, Equatable {
    public var p50: Double
    public var p90: Double
    public var p99: Double

    public init(p50: Double = 0, p90: Double = 0, p99: Double = 0) {
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
    }

    /// Nearest-rank percentiles of `values` (milliseconds).
    public init(_ values: [Double]) {
        let sorted = values.sorted()
        func rank(_ p: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            let index = Int((p * Double(sorted.count)).rounded(.up)) - 1
            return sorted[min(max(index, 0), sorted.count - 1)]
        }
        self.init(p50: rank(0.50), p90: rank(0.90), p99: rank(0.99))
    }
}

/// One endpoint's metrics, under SageMaker's metric names; what `spool stats --json`
/// prints, one object per endpoint.
///
/// - Backlog: `ApproximateBacklogSize` counts the requests queued or running (SageMaker: "being
///   processed or yet to be processed"); `ApproximateBacklogSizePerInstance` divides it by the
///   instances running (by 1 when none run); `ApproximateAgeOfOldestRequest` is the age in
///   seconds of the oldest *queued* request (0 when none waits); `HasBacklogWithoutCapacity` is 1
///   when the backlog is not empty and no instance runs (no live daemon, or a container
///   endpoint scaled to zero).
/// - Counts, over the requests the ledger still holds (`spool gc` removes old ones):
///   `InvocationsProcessed` = succeeded + failed, `InvocationFailures` = failed,
///   `ExpiredRequests` = expired; `NotificationFailures` = hook and webhook deliveries that
///   failed for good (kept in the ledger's `counters`, not removed by gc).
/// - Latencies, in milliseconds, over the `MetricsCollector.latencyWindow` most recently finished
///   requests that ran: `TimeInBacklog` = started − received, `ModelLatency` = finished − started,
///   `TotalProcessingTime` = finished − received (SageMaker reports ModelLatency in µs; Spool
///   uses one unit for all three).
/// - `InstancesRunning`: model instances of the live `spool` processes on the root (see
///   `DaemonStatus.instances(of:)`).
public struct EndpointMetrics: Sendable, Codable, Equatable {
    public var EndpointName: String
    public var ApproximateBacklogSize: Int
    public var ApproximateBacklogSizePerInstance: Double
    public var ApproximateAgeOfOldestRequest: Double
    public var HasBacklogWithoutCapacity: Int
    public var InvocationsProcessed: Int
    public var InvocationFailures: Int
    public var ExpiredRequests: Int
    public var NotificationFailures: Int
    public var InstancesRunning: Int
    public var TimeInBacklog: LatencyPercentiles
    public var ModelLatency: LatencyPercentiles
    public var TotalProcessingTime: LatencyPercentiles
    /// How many finished requests the latencies are computed over.
    public var LatencySamples: Int

    public init(
        name: String, stats: QueueStats, counters: [String: Int], instances: Int, samples: [LatencySample], now: Date
    ) {
        EndpointName = name
        ApproximateBacklogSize = stats.count(.queued) + stats.count(.running)
        ApproximateBacklogSizePerInstance = Double(ApproximateBacklogSize) / Double(max(instances, 1))
        ApproximateAgeOfOldestRequest = stats.oldestQueuedAt.map { max(0, now.timeIntervalSince($0)) } ?? 0
        HasBacklogWithoutCapacity = ApproximateBacklogSize > 0 && instances == 0 ? 1 : 0
        InvocationsProcessed = stats.count(.succeeded) + stats.count(.failed)
        InvocationFailures = stats.count(.failed)
        ExpiredRequests = stats.count(.expired)
        NotificationFailures = counters[Notifier.failureCounter] ?? 0
        InstancesRunning = instances
        // The ledger keeps whole milliseconds; rounding drops the floating-point noise.
        func millis(_ from: Date, _ to: Date) -> Double { (max(0, to.timeIntervalSince(from)) * 1000).rounded() }
        TimeInBacklog = LatencyPercentiles(samples.map { millis($0.receivedAt, $0.startedAt) })
        ModelLatency = LatencyPercentiles(samples.map { millis($0.startedAt, $0.finishedAt) })
        TotalProcessingTime = LatencyPercentiles(samples.map { millis($0.receivedAt, $0.finishedAt) })
        LatencySamples = samples.count
    }
}

/// The metrics of every endpoint at one moment.
public struct MetricsSnapshot: Sendable, Codable, Equatable {
    public var time: Date
    /// Configured endpoints and any other the ledger has requests for, by name.
    public var endpoints: [EndpointMetrics]

    public init(time: Date, endpoints: [EndpointMetrics]) {
        self.time = time
        self.endpoints = endpoints
    }

    public func endpoint(_ name: String) -> EndpointMetrics? {
        endpoints.first { $0.EndpointName == name }
    }
}
