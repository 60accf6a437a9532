import Foundation
import Glibc
import Testing

extension IntegrationTests {
    @Suite(.serialized) struct Crashes {
        @Test("kill -9 three times in the middle of 1,200 requests: after a restart every input has exactly one correct output, nothing is lost",
              .timeLimit(.minutes(4)))
        func killNineDuringWork() async throws {
            // Small payloads, so that kills land in claim batches and group commits.
            let count = 1200
            let bytes = 16 * 1024
            let root = try SpoolRoot(config: config(model: "echo"))
            let names = (0..<count).map { String(format: "p%04d.bin", $0) }
            for (i, name) in names.enumerated() {
                try Files.write(root.incoming + "/" + name, payload(i, bytes: bytes, tag: "crash"))
            }
            // Killed three times, each time part-way through (and the later ones during recovery).
            for threshold in [50, 400, 800] {
                let daemon = try root.serve()
                try await root.waitUntil("\(threshold) outputs", every: .milliseconds(2)) { Files.count(under: root.outputs) >= threshold }
                daemon.send(SIGKILL)
                let outputsAtKill = Files.count(under: root.outputs)
                #expect(try await daemon.waitForExit() == 128 + SIGKILL)
                try #require(outputsAtKill < count, "the daemon finished before it was killed; nothing was interrupted")
            }

            _ = try root.serve()
            try await root.waitForCount("outputs after the restart", toReach: count, timeout: .seconds(120)) {
                Files.count(under: root.outputs)
            }
            let status = try await root.waitForStatus("all succeeded") { $0.Succeeded >= count && $0.Queued == 0 && $0.Running == 0 }
            #expect(status.Succeeded == count && status.Failed == 0, "\(status)\n\(root.diagnostics)")
            try await root.waitUntil("an event for every request") { Set(try root.events().map(\.inferenceId)).count >= count }

            #expect(Files.files(under: root.outputs) == names.map { $0 + ".out" }, "exactly one output per input")
            for (i, name) in names.enumerated() {
                #expect(Files.read(root.output(name)) == payload(i, bytes: bytes, tag: "crash"), "output of \(name)")
            }
            #expect(Files.files(under: root.incoming).isEmpty, "no input left unclaimed")
            #expect(Files.files(under: root.path + "/.spool/partial").isEmpty, "no partial output left over")
            #expect(Files.files(under: root.path + "/.spool/claimed").isEmpty, "no claimed payload left over")
            #expect(Files.files(under: root.errors).isEmpty)
            let requests = try await root.list()
            #expect(requests.count == count, "one request per input, none recorded twice")
            let events = try root.events()
            #expect(events.allSatisfy { $0.invocationStatus == "Completed" })
            #expect(Set(events.map(\.inferenceId)) == Set(requests.map(\.InferenceId)))
            #expect(Set(events.compactMap { $0.responseParameters?.outputLocation }) == Set(names.map { root.output($0) }))
        }

        @Test("a request killed -9 while the model runs goes back to the queue and succeeds after a restart, with 1 attempt",
              .timeLimit(.minutes(2)))
        func killNineDuringARunningRequest() async throws {
            let root = try SpoolRoot(config: config(model: "sleep"))
            let first = try root.serve()
            try Files.write(root.incoming + "/job.txt", "2\n")
            let running = try await root.waitForState("running")
            first.send(SIGKILL)
            #expect(try await first.waitForExit() == 128 + SIGKILL)
            #expect(!Files.exists(root.output("job.txt")), "killed before the 2 s sleep ended")

            _ = try root.serve()
            try await root.waitUntil("the output after the restart") { Files.exists(root.output("job.txt")) }
            #expect(Files.text(root.output("job.txt")) == "2\n")
            try await root.waitUntil("the event") { try root.events().contains { $0.inferenceId == running.InferenceId } }
            let request = try await root.request(running.InferenceId)
            #expect(request.State == "succeeded")
            #expect(request.Attempts == 1, "an interrupted attempt must not count")
            #expect(!Files.exists(root.marker("job.txt")))
            #expect(try root.events().allSatisfy { $0.invocationStatus == "Completed" })
        }

        @Test("SIGTERM while a request runs: the daemon exits 0 within the grace period; the request finished or is queued, and drain finishes it",
              .timeLimit(.minutes(2)))
        func sigtermDrainsGracefully() async throws {
            let root = try SpoolRoot(config: config(model: "sleep"))
            let daemon = try root.serve()
            try Files.write(root.incoming + "/one.txt", "1\n")
            let running = try await root.waitForState("running")
            daemon.send(SIGTERM)
            #expect(try await daemon.waitForExit(timeout: .seconds(13)) == 0, "\(root.diagnostics)")
            let state = try await root.request(running.InferenceId).State
            #expect(state == "succeeded" || state == "queued", "after a clean stop, not \(state)")

            let drain = try await root.run("drain")
            #expect(drain.status == 0, "\(drain.text)\(drain.stderr)")
            #expect(try await root.request(running.InferenceId).State == "succeeded")
            #expect(Files.text(root.output("one.txt")) == "1\n")
        }

        @Test("SIGTERM with --grace 1 and a 4 s request: the daemon exits 0 promptly, the request is queued again, drain runs it once",
              .timeLimit(.minutes(2)))
        func sigtermAfterGraceRequeues() async throws {
            let root = try SpoolRoot(config: config(model: "sleep"))
            let daemon = try root.serve(["--grace", "1"])
            try Files.write(root.incoming + "/four.txt", "4\n")
            let running = try await root.waitForState("running")
            let signalled = ContinuousClock.now
            daemon.send(SIGTERM)
            #expect(try await daemon.waitForExit(timeout: .seconds(10)) == 0, "\(root.diagnostics)")
            #expect(ContinuousClock.now - signalled < .seconds(3.5), "the grace period is 1 s")
            let requeued = try await root.request(running.InferenceId)
            #expect(requeued.State == "queued", "interrupted by shutdown: back in the queue")
            #expect(!Files.exists(root.marker("four.txt")) && !Files.exists(root.output("four.txt")))

            let drain = try await root.run("drain")
            #expect(drain.status == 0, "\(drain.text)\(drain.stderr)")
            let done = try await root.request(running.InferenceId)
            #expect(done.State == "succeeded" && done.Attempts == 1)
            #expect(Files.text(root.output("four.txt")) == "4\n")
            #expect(try root.events().filter { $0.inferenceId == running.InferenceId }.count == 1)
        }

        @Test("kill -9 of the daemon while a command model runs: the model dies with it (its guard kills it), and the restart retries the request",
              .timeLimit(.minutes(2)))
        func killNineLeavesNoOrphanModel() async throws {
            try await orphanedModel(guardAlive: true)
        }

        @Test("kill -9 of the daemon and of its guard while a command model runs: the next start kills the orphaned model before retrying",
              .timeLimit(.minutes(2)))
        func killNineWithoutGuardLeavesNoOrphanAfterRestart() async throws {
            try await orphanedModel(guardAlive: false)
        }

        /// A command model runs when the daemon is killed with SIGKILL. With the guard alive the
        /// model dies at once; without it, it runs on until the next start kills it.
        private func orphanedModel(guardAlive: Bool) async throws {
            let root = try SpoolRoot()
            let pids = root.base + "/pids"
            try Files.makeDirectories(pids)
            // Each attempt writes its PID, then runs long (a child of the shell, in its group).
            let script = "echo $$ > \(pids)/$(date +%s%N); sleep 600; cat"
            try Files.write(root.path + "/spool.toml", """
                [endpoints.default]
                model = { command = ["sh", "-c", \(String(reflecting: script))] }
                """)
            func attempts() -> [pid_t] {
                ((try? FileManager.default.contentsOfDirectory(atPath: pids)) ?? []).sorted().compactMap {
                    Files.text(pids + "/" + $0).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
                }
            }
            func isRunning(_ pid: pid_t) -> Bool {
                guard let stat = Files.text("/proc/\(pid)/stat"), let paren = stat.lastIndex(of: ")") else { return false }
                let state = stat[stat.index(paren, offsetBy: 2)]
                return state != "Z" && state != "X"
            }
            defer { for pid in attempts() { kill(-pid, SIGKILL) } }
            let first = try root.serve()
            try Files.write(root.incoming + "/job.txt", "x")
            try await root.waitUntil("the first attempt") { attempts().count == 1 }
            let orphan = attempts()[0]
            let guards = IntegrationTests.AsPIDOne.children(of: first.pid).map(\.pid).filter {
                Files.text("/proc/\($0)/cmdline")?.contains("guard-models") == true
            }
            #expect(guards.count == 1, "serve runs one model guard")
            if !guardAlive {
                for pid in guards { kill(pid, SIGKILL) }
            }
            first.send(SIGKILL)
            #expect(try await first.waitForExit() == 128 + SIGKILL)
            if guardAlive {
                try await root.waitUntil("the model killed with its daemon") { !isRunning(orphan) }
            } else {
                #expect(isRunning(orphan), "without its guard, the model outlives the daemon")
            }

            _ = try root.serve()
            try await root.waitUntil("the orphaned model killed") { !isRunning(orphan) }
            try await root.waitUntil("the retried attempt") { attempts().count == 2 }
            #expect(!isRunning(orphan))
        }

        @Test("kill -9 of spool invoke in the middle of a copy leaves no payload copy behind once a daemon starts",
              .timeLimit(.minutes(2)))
        func killNineDuringInvokeCopy() async throws {
            let root = try SpoolRoot(config: config(model: "echo"))
            _ = try await root.run("init", [root.path], withRoot: false)
            let fifo = root.base + "/stdin.fifo"
            guard mkfifo(fifo, 0o600) == 0 else { throw HarnessError("mkfifo: errno \(errno)") }
            // Held open for writing, so the invoke's read of its standard input blocks mid-copy.
            let writer = open(fifo, O_RDWR)
            defer { close(writer) }
            let partial = root.path + "/.spool/partial"
            let invoke = try root.spawn("invoke", ["-"], stdin: fifo)
            let chunk = [UInt8](repeating: 0x61, count: 64 * 1024)
            #expect(write(writer, chunk, chunk.count) == chunk.count)
            func copies() -> [String] {
                ((try? FileManager.default.contentsOfDirectory(atPath: partial)) ?? []).filter { $0.hasSuffix(".submit") }
            }
            try await root.waitUntil("a partial copy of the payload") {
                copies().contains { Files.read(partial + "/" + $0)?.count == chunk.count }
            }
            invoke.send(SIGKILL)
            #expect(try await invoke.waitForExit() == 128 + SIGKILL)

            _ = try root.serve()
            try await root.waitUntil("the copy removed") { copies().isEmpty }
            #expect(try await root.list().isEmpty, "nothing was queued")
        }

        @Test("a daemon and spool drain on one root at once: 500 files, each run exactly once", .timeLimit(.minutes(4)))
        func daemonAndDrainShareARoot() async throws {
            let count = 500
            let root = try SpoolRoot(config: config(model: "echo"))
            let names = (0..<count).map { String(format: "s%03d.txt", $0) }
            for (i, name) in names.enumerated().prefix(count / 2) {
                try Files.write(root.incoming + "/" + name, payload(i, bytes: 4096, tag: "shared"))
            }
            _ = try root.serve()
            let drain = try root.spawn("drain")
            for (i, name) in names.enumerated().dropFirst(count / 2) {
                try Files.write(root.incoming + "/" + name, payload(i, bytes: 4096, tag: "shared"))
            }
            #expect(try await drain.waitForExit(timeout: .seconds(120)) == 0, "\(root.diagnostics)")
            try await root.waitForCount("outputs", toReach: count, timeout: .seconds(120)) { Files.count(under: root.outputs) }
            let status = try await root.waitForStatus("500 succeeded") { $0.Succeeded >= count && $0.Queued == 0 && $0.Running == 0 }
            #expect(status.Succeeded == count && status.Failed == 0, "\(status)")
            try await root.waitUntil("500 events") { try root.events().count >= count }

            let events = try root.events()
            #expect(events.count == count, "one event per request\n\(root.diagnostics)")
            #expect(Set(events.map(\.inferenceId)).count == count, "no request ran twice")
            let requests = try await root.list()
            #expect(requests.count == count && requests.allSatisfy { $0.Attempts == 1 && $0.State == "succeeded" })
            #expect(Files.files(under: root.outputs) == names.map { $0 + ".out" })
            for (i, name) in names.enumerated() {
                #expect(Files.read(root.output(name)) == payload(i, bytes: 4096, tag: "shared"), "output of \(name)")
            }
            #expect(Files.files(under: root.incoming).isEmpty)
        }
    }
}
