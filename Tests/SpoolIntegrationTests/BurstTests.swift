import Foundation
import Glibc
import SpoolTestSupport
import Testing

extension IntegrationTests {
    @Suite(.serialized) struct Bursts {
        @Test("a burst of 5,000 1 KiB files gives exactly 5,000 correct outputs and 5,000 events", .timeLimit(.minutes(5)))
        func burstOf5000() async throws {
            let count = 5_000
            let root = try SpoolRoot()  // builtin sha256
            _ = try root.serve()
            try await root.warmUp()
            let names = (0..<count).map { String(format: "f%05d.bin", $0) }
            try await onThreadOfItsOwn {
                for (i, name) in names.enumerated() {
                    try Files.write(root.incoming + "/" + name, payload(i, bytes: 1024, tag: "burst"))
                }
            }
            try await root.waitForCount("outputs of the burst", toReach: count + 1, timeout: .seconds(120)) {
                Files.count(under: root.outputs)
            }
            try await root.waitForCount("events of the burst", toReach: count + 1, timeout: .seconds(30)) {
                try root.events().count
            }

            #expect(Files.count(under: root.outputs) == count + 1, "no extra outputs")
            let events = try root.events().filter { $0.requestParameters.inputLocation != root.incoming + "/warmup.txt" }
            #expect(events.count == count, "one event per file\n\(root.diagnostics)")
            #expect(events.allSatisfy { $0.invocationStatus == "Completed" })
            #expect(Set(events.map(\.inferenceId)).count == count, "distinct inference ids")
            #expect(Set(events.compactMap { $0.responseParameters?.outputLocation }) == Set(names.map { root.output($0) }))

            // Every output is a sha256 result of 1024 bytes, all digests distinct (the payloads are).
            var digests = Set<String>()
            for name in names {
                let text = Files.text(root.output(name)) ?? ""
                #expect(text.hasPrefix(#"{"sha256":""#) && text.hasSuffix(#"","bytes":1024}"# + "\n"), "output of \(name): \(text)")
                digests.insert(text)
            }
            #expect(digests.count == count)
            // 50 of them checked against the test's own SHA-256.
            for i in stride(from: 7, to: count, by: count / 50) {
                #expect(Files.text(root.output(names[i])) == SHA256.modelOutput(payload(i, bytes: 1024, tag: "burst")), "output of \(names[i])")
            }
            let status = try await root.queueStatus()
            #expect(status.Succeeded == count + 1 && status.Failed == 0 && status.Queued == 0 && status.Running == 0)
            #expect(Files.files(under: root.incoming).isEmpty)
        }

        @Test("a burst of 40,000 files (enough to overflow the inotify queue) is processed completely", .timeLimit(.minutes(10)))
        func burstOf40000OverflowsInotify() async throws {
            let count = 40_000, perFolder = 1_000
            let root = try SpoolRoot(config: config(model: "echo"))
            let daemon = try root.serve(["--log-level", "notice"])
            try await root.warmUp()
            // The daemon is stopped while the burst is written, so the kernel queue certainly
            // overflows: each file makes at least two events (create, close-write).
            let queueLimit = Int(Files.text("/proc/sys/fs/inotify/max_queued_events")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
            try #require(queueLimit > 0 && queueLimit < 2 * count, "fs.inotify.max_queued_events = \(queueLimit) is too large to overflow")
            daemon.send(SIGSTOP)
            // 40 sub-folders made during the burst: after an overflow the rescan must watch them too.
            try await onThreadOfItsOwn {
                for folder in 0..<(count / perFolder) {
                    let directory = root.incoming + String(format: "/d%02d", folder)
                    try Files.makeDirectories(directory)
                    for i in 0..<perFolder {
                        try Files.write(directory + String(format: "/f%05d", i), Array("file \(folder)/\(i)\n".utf8))
                    }
                }
            }
            daemon.send(SIGCONT)
            let started = ContinuousClock.now
            try await root.waitForCount("outputs of the 40,000-file burst", toReach: count + 1, timeout: .seconds(420), every: .seconds(1)) {
                Files.count(under: root.outputs)
            }
            print("40,000 outputs \(ContinuousClock.now - started) after the burst was written")
            let status = try await root.waitForStatus("40,000 succeeded in the ledger") { $0.Succeeded == count + 1 }
            #expect(Files.files(under: root.incoming).isEmpty)
            #expect(status.Failed == 0 && status.Queued == 0 && status.Running == 0)
            #expect(Files.count(under: root.outputs) == count + 1)
            #expect(Files.text(root.output("d17/f00423")) == "file 17/423\n")
            try await root.waitForCount("events of the burst", toReach: count + 1, timeout: .seconds(60)) {
                try root.events().count
            }
            #expect(try root.events().count == count + 1)
        }
    }
}
