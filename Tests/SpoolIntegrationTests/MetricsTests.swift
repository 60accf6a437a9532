import Foundation
import Glibc
import SpoolDaemon
import Testing

extension IntegrationTests {
    @Suite(.serialized) struct Metrics {
        @Test("spool stats --json counts a known mix of succeeded and failed requests, the backlog, and the instances of a live daemon",
              .timeLimit(.minutes(3)))
        func statsAfterAKnownMix() async throws {
            let root = try SpoolRoot(config: echoAndFailConfig)
            try Files.makeDirectories(root.path + "/bad/incoming")
            for i in 0..<3 { try Files.write(root.incoming + "/ok-\(i).txt", "ok \(i)") }
            for i in 0..<2 { try Files.write(root.path + "/bad/incoming/ko-\(i).txt", "ko \(i)") }
            let drain = try await root.run("drain")
            #expect(drain.status == 1, "\(drain.text)\(drain.stderr)")

            let good = try await root.stats()
            #expect(good.InvocationsProcessed == 3 && good.InvocationFailures == 0 && good.ExpiredRequests == 0)
            #expect(good.ApproximateBacklogSize == 0 && good.HasBacklogWithoutCapacity == 0)
            #expect(good.NotificationFailures == 0)
            #expect(good.InstancesRunning == 0, "no daemon runs")
            #expect(good.LatencySamples == 3)
            for p in [good.TimeInBacklog, good.ModelLatency, good.TotalProcessingTime] {
                #expect(p.p50 >= 0 && p.p50 <= p.p90 && p.p90 <= p.p99)
            }
            #expect(good.TotalProcessingTime.p99 >= good.ModelLatency.p50)
            let bad = try await root.stats(endpoint: "bad")
            #expect(bad.InvocationsProcessed == 2 && bad.InvocationFailures == 2 && bad.LatencySamples == 2)

            // Queued with nobody to run them: a backlog without capacity.
            for i in 0..<2 { _ = try await root.invoke(["-"], stdin: Data("queued \(i)".utf8)) }
            try await Task.sleep(for: .milliseconds(300))
            let waiting = try await root.stats()
            #expect(waiting.ApproximateBacklogSize == 2 && waiting.HasBacklogWithoutCapacity == 1)
            #expect(waiting.ApproximateBacklogSizePerInstance == 2)
            #expect(waiting.ApproximateAgeOfOldestRequest >= 0.2 && waiting.ApproximateAgeOfOldestRequest < 60)

            // A daemon comes up: it runs them and reports its instances through its status file.
            let daemon = try root.serve()
            let served = try await root.waitForStats("the backlog to clear with instances running") {
                $0.ApproximateBacklogSize == 0 && $0.InstancesRunning > 0
            }
            #expect(served.InvocationsProcessed == 5 && served.HasBacklogWithoutCapacity == 0)
            #expect(try await root.stats(endpoint: "bad").InstancesRunning > 0)
            daemon.send(SIGTERM)
            #expect(try await daemon.waitForExit(timeout: .seconds(30)) == 0)
            #expect(try await root.stats().InstancesRunning == 0, "a stopped daemon's instances are gone")
        }

        @Test("spool stats --prometheus is Prometheus text: comments, then `name{labels} value` lines for every endpoint",
              .timeLimit(.minutes(2)))
        func prometheusTextParses() async throws {
            let root = try SpoolRoot(config: echoAndFailConfig)
            try Files.write(root.incoming + "/a.txt", "a")
            _ = try await root.run("drain")
            let result = try await root.run("stats", ["--prometheus"])
            #expect(result.status == 0, "\(result.stderr)")
            let sample = try Regex(#"^[a-zA-Z_:][a-zA-Z0-9_:]*\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)+\} -?[0-9.eE+-]+$"#)
            var names = Set<String>()
            for line in result.text.split(separator: "\n") {
                if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") { continue }
                #expect(line.wholeMatch(of: sample) != nil, "not a sample line: \(line)")
                names.insert(String(line.prefix { $0 != "{" }))
            }
            for name in [
                "spool_approximate_backlog_size", "spool_approximate_backlog_size_per_instance",
                "spool_approximate_age_of_oldest_request_seconds", "spool_has_backlog_without_capacity",
                "spool_instances_running", "spool_invocations_processed_total", "spool_invocation_failures_total",
                "spool_expired_requests_total", "spool_notification_failures_total", "spool_time_in_backlog_seconds",
                "spool_model_latency_seconds", "spool_total_processing_time_seconds",
            ] {
                #expect(names.contains(name), "\(name) missing")
            }
            #expect(result.text.contains(#"spool_invocations_processed_total{endpoint="default"} 1"#))
            #expect(result.text.contains(#"spool_model_latency_seconds{endpoint="bad",quantile="0.99"} "#))
        }

        @Test("latency percentiles are nearest-rank")
        func percentiles() {
            let p = LatencyPercentiles((1...100).map(Double.init).shuffled())
            #expect(p == LatencyPercentiles(p50: 50, p90: 90, p99: 99))
            #expect(LatencyPercentiles([]) == LatencyPercentiles())
            #expect(LatencyPercentiles([7]) == LatencyPercentiles(p50: 7, p90: 7, p99: 7))
        }
    }
}
