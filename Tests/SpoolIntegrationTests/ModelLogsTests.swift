import Foundation
import Glibc
import Testing

extension IntegrationTests {
    /// Models' logs as a user reads them: `logs/` under the root and `spool logs`.
    @Suite(.serialized) struct ModelLogs {
        static func peakRSSMiB(_ pid: pid_t) -> Double? {
            guard let status = Files.text("/proc/\(pid)/status"),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
                  let kib = Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
            else { return nil }
            return kib / 1024
        }

        @Test("command models' stderr lines land in logs/ENDPOINT.log tagged with the InferenceId; spool logs shows and follows them; 1 GiB of stderr neither stalls the request nor fills memory",
              .timeLimit(.minutes(3)))
        func commandModelLogs() async throws {
            let script = #"echo "working on $SPOOL_INFERENCE_ID" >&2; if [ "$(cat)" = flood ]; then yes | head -c 1073741824 >&2; fi; echo done"#
            let root = try SpoolRoot(config: """
                [endpoints.default]
                model = { command = ["sh", "-c", \(String(reflecting: script))] }
                """)
            let daemon = try root.serve()
            try Files.write(root.incoming + "/a.txt", "hi")
            try await root.waitUntil("a's output") { Files.exists(root.output("a.txt")) }
            let a = try #require(try await root.list().first { $0.InputLocation.hasSuffix("/a.txt") })
            try await root.waitUntil("a's log line") {
                (Files.text(root.path + "/logs/default.log") ?? "").contains("[\(a.InferenceId)] working on \(a.InferenceId)")
            }
            let logs = try await root.run("logs", ["default"])
            #expect(logs.status == 0)
            let line = try #require(logs.text.split(separator: "\n").first { $0.contains(a.InferenceId) })
            #expect(line.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \["#, options: .regularExpression) != nil, "\(line)")
            #expect(try await root.run("logs", ["default", "--since", "1h"]).text.contains(a.InferenceId))
            #expect(!(try await root.run("logs", ["default", "--since", "2099-01-01T00:00:00Z"]).text.contains(a.InferenceId)))
            let unknown = try await root.run("logs", ["nope"])
            #expect(unknown.status == 2 && unknown.stderr.contains("unknown endpoint nope"), "\(unknown.stderr)")

            // --follow prints new lines as they come.
            let follower = try root.spawn("logs", ["default", "--follow"])
            defer { follower.send(SIGTERM) }
            try Files.write(root.incoming + "/b.txt", "hi")
            try await root.waitUntil("b's output") { Files.exists(root.output("b.txt")) }
            let b = try #require(try await root.list().first { $0.InputLocation.hasSuffix("/b.txt") })
            try await root.waitUntil("b's line followed") { String(decoding: follower.stdout, as: UTF8.self).contains("working on \(b.InferenceId)") }

            // A model that floods stderr: the request finishes, memory stays flat, the log is bounded.
            let started = ContinuousClock.now
            try Files.write(root.incoming + "/flood.txt", "flood")
            try await root.waitUntil("the flood's output", timeout: .seconds(120)) { Files.exists(root.output("flood.txt")) }
            #expect(Files.text(root.output("flood.txt")) == "done\n")
            #expect(ContinuousClock.now - started < .seconds(90))
            let peak = try #require(Self.peakRSSMiB(daemon.pid))
            #expect(peak < 150, "peak RSS \(peak) MiB after 1 GiB of stderr")
            let sizes = (try FileManager.default.contentsOfDirectory(atPath: root.path + "/logs")).map {
                (try? FileManager.default.attributesOfItem(atPath: root.path + "/logs/" + $0)[.size] as? Int) ?? 0
            }
            let total: Int = sizes.reduce(0, +)
            let bound: Int = 3 * 10 * 1024 * 1024 + 64 * 1024
            #expect(total <= bound, "at most three files of 10 MiB: \(sizes)")
            try await root.waitUntil("the drop said so") {
                (Files.text(root.path + "/logs/default.log") ?? "").contains("bytes of output were not logged")
            }
            #expect(daemon.isRunning)
        }
    }
}
