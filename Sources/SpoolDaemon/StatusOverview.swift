import Foundation
import SpoolCore

#if canImport(Glibc)
import Glibc
#endif

/// What the status page (`GET /` on the listener) shows of a root, read the way `spool stats`
/// reads it: the queue's counts, the latency window and the latest failures, each at a cost
/// that does not grow with the finished requests the ledger holds.
public struct StatusOverview: Sendable, Equatable {
    /// One minute of the charts: requests finished in it, and their total processing time.
    public struct Minute: Sendable, Equatable {
        public var start: Date
        public var finished: Int
        /// Milliseconds from arrival to finish; nil when nothing finished that minute.
        public var p50: Double?
        public var p99: Double?
    }

    public struct Endpoint: Sendable, Equatable {
        public var name: String
        public var queued: Int
        public var running: Int
        /// Seconds the oldest queued request has waited; nil when none waits.
        public var oldestQueuedAge: Double?
        public var instances: Int
        public var succeeded: Int
        public var failed: Int
        public var expired: Int
        public var cancelled: Int
        /// The last hour, a minute each, oldest first.
        public var minutes: [Minute]
        /// When the latency window (the most recent `MetricsCollector.latencyWindow` requests)
        /// begins inside the hour: minutes before it are unknown, not idle. Nil when the window
        /// covers the whole hour.
        public var chartKnownSince: Date?
    }

    /// A request that did not succeed, for the failures table.
    public struct Failure: Sendable, Equatable {
        public var id: String
        public var endpoint: String
        public var state: String
        public var code: String?
        public var reason: String?
        public var finishedAt: Date?
        public var inputLocation: String
        public var markerLocation: String
    }

    public var time: Date
    public var endpoints: [Endpoint]
    public var failures: [Failure]

    /// Buckets `samples` into the `count` minutes before `now`, oldest first.
    public static func minutes(of samples: [LatencySample], now: Date, count: Int = 60) -> [Minute] {
        let end = (now.timeIntervalSince1970 / 60).rounded(.down) * 60 + 60
        let start = end - Double(count * 60)
        var totals = Array(repeating: [Double](), count: count)
        for sample in samples {
            let at = sample.finishedAt.timeIntervalSince1970
            guard at >= start, at < end else { continue }
            let index = Int((at - start) / 60)
            totals[min(index, count - 1)].append(max(0, sample.finishedAt.timeIntervalSince(sample.receivedAt) * 1000).rounded())
        }
        return totals.enumerated().map { index, values in
            let percentiles = LatencyPercentiles(values)
            return Minute(
                start: Date(timeIntervalSince1970: start + Double(index * 60)), finished: values.count,
                p50: values.isEmpty ? nil : percentiles.p50, p99: values.isEmpty ? nil : percentiles.p99)
        }
    }
}

/// Reads the status page's views from a running engine.
public struct StatusPageReader: Sendable {
    let engine: SpoolEngine
    /// How many failures the page lists.
    public static let failuresShown = 20

    public init(engine: SpoolEngine) {
        self.engine = engine
    }

    public func overview(now: Date = Date()) async throws -> StatusOverview {
        let ledger = engine.ledger
        let stats = try await ledger.queueStats()
        let instances = MetricsCollector(engine: engine).instances()
        let names = engine.config.endpoints.map(\.name)
        var endpoints: [StatusOverview.Endpoint] = []
        for name in names + Set(stats.keys).subtracting(names).sorted() {
            let counts = stats[name] ?? QueueStats()
            let hourAgo = now.addingTimeInterval(-3600)
            let samples = try await ledger.latencySamples(endpoint: name, since: hourAgo, limit: MetricsCollector.latencyWindow)
            var knownSince: Date?
            if samples.count == MetricsCollector.latencyWindow, let oldest = samples.last?.finishedAt, oldest > hourAgo {
                knownSince = oldest
            }
            endpoints.append(StatusOverview.Endpoint(
                name: name, queued: counts.count(.queued), running: counts.count(.running),
                oldestQueuedAge: counts.oldestQueuedAt.map { max(0, now.timeIntervalSince($0)) },
                instances: instances[name] ?? 0, succeeded: counts.count(.succeeded), failed: counts.count(.failed),
                expired: counts.count(.expired), cancelled: counts.count(.cancelled),
                minutes: StatusOverview.minutes(of: samples, now: now), chartKnownSince: knownSince))
        }
        let failures = try await ledger.latestFailures(limit: Self.failuresShown).map { request in
            StatusOverview.Failure(
                id: request.id, endpoint: request.endpoint, state: request.state.rawValue,
                code: request.failureCode?.rawValue, reason: request.failureReason, finishedAt: request.finishedAt,
                inputLocation: engine.publisher.inputLocation(request),
                markerLocation: engine.layout.path(request.failureLocation))
        }
        return StatusOverview(time: now, endpoints: endpoints, failures: failures)
    }

    /// A request's page: what `spool status ID --json` shows, and its error marker when it has one.
    public func request(id: String) async throws -> RequestDetail? {
        guard let request = try await engine.ledger.request(id: id) else { return nil }
        let view = RequestView(request, publisher: engine.publisher)
        let marker = request.state.isTerminal && request.state != .succeeded
            ? RequestDetail.readMarker(at: engine.layout.path(request.failureLocation)) : nil
        return RequestDetail(request: view, marker: marker)
    }
}

/// A request as its page shows it.
public struct RequestDetail: Sendable, Equatable {
    public var request: RequestView
    /// Its error marker, when it failed and the marker is there.
    public var marker: ErrorMarker?

    /// How far a running request got, 0…1 (nil when its size is unknown).
    public var progress: Double? {
        guard request.State == RequestState.running.rawValue, request.PayloadBytes > 0 else { return nil }
        return min(1, Double(request.BytesProcessed) / Double(request.PayloadBytes))
    }

    /// Markers are small; a bigger file, a link or anything but a regular file is not read
    /// (someone who can write to `errors/` must not make the page show another file).
    static let markerLimit = 64 * 1024

    static func readMarker(at path: String) -> ErrorMarker? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_size <= markerLimit else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count == bytes.count else { return nil }
        return try? JSONDecoder().decode(ErrorMarker.self, from: Data(bytes))
    }
}
