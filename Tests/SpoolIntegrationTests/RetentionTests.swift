import Foundation
import Glibc
import SpoolCore
import SpoolLedger
import Testing

extension IntegrationTests {
    @Suite(.serialized) struct Retention {
        /// Finished requests as weeks of traffic leave them, recorded straight into the ledger:
        /// `old` failed `days` ago and `recent` failed now, each with its kept input under
        /// `.spool/claimed` and its marker (dated at its failure) under `errors/`.
        static func seed(_ root: SpoolRoot, old: Int, recent: Int, days: Double) async throws {
            let ledger = try SQLiteLedger(path: root.path + "/.spool/ledger.sqlite")
            let now = Date()
            var admissions: [Admission] = []
            for (prefix, count, at) in [("old", old, now.addingTimeInterval(-days * 86400)), ("recent", recent, now)] {
                for i in 0..<count {
                    let id = "\(prefix)-\(i)"
                    let name = "\(id).txt"
                    let request = InferenceRequest(
                        id: id, endpoint: "default", source: .drop, inputPath: name, claimToken: "token-\(id)",
                        payloadBytes: 5, ttlSeconds: 3600, timeoutSeconds: 900, maxAttempts: 1, receivedAt: at,
                        outputLocation: "outputs/\(name).out", failureLocation: "errors/\(name).error.json")
                    admissions.append(Admission(request, initialFailure: Failure(.modelError, "It failed long ago.")))
                    try Files.makeDirectories(root.path + "/" + request.claimDirectory)
                    try Files.write(root.path + "/" + request.claimedPayloadPath, "input")
                    try Files.makeDirectories(root.errors)
                    try Files.write(root.path + "/" + request.failureLocation, "{}")
                    var times = [timespec(tv_sec: Int(at.timeIntervalSince1970), tv_nsec: 0)]
                    times.append(times[0])
                    guard utimensat(AT_FDCWD, root.path + "/" + request.failureLocation, times, 0) == 0 else {
                        throw HarnessError("utimensat: errno \(errno)")
                    }
                }
            }
            for start in stride(from: 0, to: admissions.count, by: 5000) {
                _ = try await ledger.admit(Array(admissions[start..<min(start + 5000, admissions.count)]))
            }
            _ = try await ledger.markNotified(ids: admissions.map(\.request.id))
        }

        /// Token folders of kept inputs (one directory read, cheap enough to poll).
        static func keptInputs(_ root: SpoolRoot, prefix: String) -> Int {
            let folders = (try? FileManager.default.contentsOfDirectory(atPath: root.path + "/.spool/claimed/default")) ?? []
            return folders.filter { $0.hasPrefix("token-\(prefix)-") }.count
        }

        static func markers(_ root: SpoolRoot, prefix: String) -> Int {
            Files.files(under: root.errors).filter { $0.hasPrefix("\(prefix)-") }.count
        }

        @Test("the daemon removes finished requests past retain_finished with their kept inputs, and their markers only with retain_outputs",
              arguments: [false, true])
        func daemonRemovesOldFinishedRequests(retainOutputs: Bool) async throws {
            let root = try SpoolRoot(config: config(model: "echo") + """

                [spool]
                retain_finished = "7d"
                retain_outputs = \(retainOutputs)
                """)
            try await Self.seed(root, old: 600, recent: 5, days: 8)
            _ = try root.serve()
            try await root.waitForStatus("the old requests removed") { $0.Failed == 5 }
            let ids = Set(try await root.list().map(\.InferenceId))
            #expect(ids == Set((0..<5).map { "recent-\($0)" }))
            #expect(Self.keptInputs(root, prefix: "old") == 0)
            #expect(Self.keptInputs(root, prefix: "recent") == 5)
            #expect(Self.markers(root, prefix: "old") == (retainOutputs ? 0 : 600))
            #expect(Self.markers(root, prefix: "recent") == 5)
        }

        @Test("retain_finished = 0 keeps everything")
        func zeroKeepsEverything() async throws {
            let root = try SpoolRoot(config: config(model: "echo") + "\n[spool]\nretain_finished = 0\n")
            try await Self.seed(root, old: 20, recent: 0, days: 400)
            _ = try root.serve()
            try Files.dropViaTemporary(root.incoming + "/probe", Array("probe".utf8))
            try await root.waitUntil("the probe's output") { Files.exists(root.output("probe")) }
            #expect(try await root.queueStatus().Failed == 20)
            #expect(Self.keptInputs(root, prefix: "old") == 20)
        }

        @Test("kill -9 during retention loses nothing and queues nothing again", .timeLimit(.minutes(3)))
        func killNineDuringRetention() async throws {
            let old = 12_000
            let root = try SpoolRoot(config: config(model: "echo") + "\n[spool]\nretain_finished = \"1d\"\n")
            try await Self.seed(root, old: old, recent: 10, days: 2)
            for threshold in [old * 3 / 4, old / 3] {
                let daemon = try root.serve()
                try await root.waitUntil("retention under way", timeout: .seconds(60), every: .milliseconds(5)) {
                    Self.keptInputs(root, prefix: "old") <= threshold
                }
                daemon.send(SIGKILL)
                #expect(try await daemon.waitForExit() == 128 + SIGKILL)
            }
            try #require(Self.keptInputs(root, prefix: "old") > 0, "retention finished before the last kill")
            _ = try root.serve()
            try await root.waitForStatus("the old requests removed") { $0.Failed == 10 }
            let status = try await root.queueStatus()
            #expect(status.Queued == 0 && status.Running == 0 && status.Succeeded == 0, "nothing queued again: \(status)")
            #expect(Set(try await root.list().map(\.InferenceId)) == Set((0..<10).map { "recent-\($0)" }))
            #expect(Self.keptInputs(root, prefix: "old") == 0)
            #expect(Self.keptInputs(root, prefix: "recent") == 10)
            #expect(Self.markers(root, prefix: "old") == old, "markers are the user's")
            #expect(Files.files(under: root.outputs).isEmpty, "nothing ran")
        }

        @Test("spool retry and a retention batch never interleave: a retry that waited on a batch removing its request says so and queues nothing",
              .timeLimit(.minutes(1)))
        func retryWaitsForRetentionBatch() async throws {
            let root = try SpoolRoot(config: config(model: "echo"))
            try await Self.seed(root, old: 1, recent: 1, days: 30)
            let ledger = try SQLiteLedger(path: root.path + "/.spool/ledger.sqlite")
            // This test plays a retention batch: it holds the lock `spool gc` and the daemon take.
            let lock = open(root.path + "/.spool/retention.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            try #require(lock >= 0 && flock(lock, LOCK_EX) == 0)
            let retry = try root.spawn("retry", ["old-0"])
            await #expect(throws: HarnessError.self, "the retry waits for the batch") {
                try await retry.waitForExit(timeout: .seconds(1))
            }
            let old = try #require(try await ledger.request(id: "old-0"))
            try FileManager.default.removeItem(atPath: root.path + "/" + old.claimDirectory)
            #expect(try await ledger.delete(ids: ["old-0"]) == 1)
            close(lock)

            #expect(try await retry.waitForExit() == 2, "\(retry.stderr)")
            #expect(retry.stderr.contains("unknown inference id old-0"), "\(retry.stderr)")
            #expect(try await ledger.request(id: "old-0") == nil, "nothing queued")

            // Without a batch in the way, the retry queues the request, and gc leaves it alone.
            let queued = try await root.run("retry", ["recent-0"])
            #expect(queued.status == 0, "\(queued.stderr)")
            let gc = try await root.run("gc", ["--older-than", "0s"])
            #expect(gc.status == 0, "\(gc.stderr)")
            #expect(try await ledger.request(id: "recent-0")?.state == .queued)
            #expect(Self.keptInputs(root, prefix: "recent") == 1)
        }
    }
}
