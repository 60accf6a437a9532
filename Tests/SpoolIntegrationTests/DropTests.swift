import Foundation
import Glibc
import Testing

extension SpoolRoot {
    /// Drops `warmup.txt` and waits for its output: from then on the daemon is watching, so
    /// later drops exercise the inotify path rather than the start-up scan.
    func warmUp(content: String = "warm up\n") async throws {
        try Files.write(incoming + "/warmup.txt", content)
        try await waitUntil("the warm-up output") { Files.exists(output("warmup.txt")) }
    }
}

extension IntegrationTests {
    @Suite(.serialized) struct Drops {
        @Test("a file written in place and one moved in from a .tmp name both get their sha256 result and event, and leave nothing behind",
              .timeLimit(.minutes(2)))
        func droppedFilesProduceResults() async throws {
            let root = try SpoolRoot()  // no spool.toml: the default sha256 model
            _ = try root.serve()
            try await root.warmUp()
            let written = payload(1, bytes: 10_000), moved = payload(2, bytes: 300_000)
            try Files.write(root.incoming + "/written.bin", written)
            try Files.dropViaTemporary(root.incoming + "/moved.bin", moved)

            try await root.waitUntil("both outputs and their events") {
                try root.events().filter { $0.invocationStatus == "Completed" }.count >= 3
            }
            for (name, bytes) in [("written.bin", written), ("moved.bin", moved)] {
                let copy = root.base + "/expected-" + name
                try Files.write(copy, bytes)
                let digest = try Files.sha256sum(copy)
                #expect(SHA256.hex(bytes) == digest, "the test's own SHA-256 disagrees with sha256sum")
                #expect(Files.text(root.output(name)) == #"{"sha256":"\#(digest)","bytes":\#(bytes.count)}"# + "\n",
                        "output of \(name)\n\(root.diagnostics)")

                let events = try root.events().filter { $0.responseParameters?.outputLocation == root.output(name) }
                try #require(events.count == 1, "exactly one event for \(name)\n\(root.diagnostics)")
                let event = events[0]
                #expect(event.invocationStatus == "Completed")
                #expect(event.eventSource == "spool" && event.eventName == "InferenceResult" && event.eventVersion == "1.0")
                #expect(event.requestParameters.inputLocation == root.incoming + "/" + name)
                #expect(event.requestParameters.endpointName == "default")
                let recorded = try await root.request(event.inferenceId)
                #expect(recorded.State == "succeeded" && recorded.OutputLocation == root.output(name))
            }
            #expect(Files.files(under: root.outputs) == ["moved.bin.out", "warmup.txt.out", "written.bin.out"],
                    "the temporary name must never be processed")
            #expect(Files.files(under: root.incoming).isEmpty, "inputs must leave incoming/")
            #expect(Files.files(under: root.path + "/.spool/claimed").isEmpty, "succeeded inputs must be deleted")
            #expect(Files.files(under: root.errors).isEmpty)
        }

        @Test("a payload's file, recycled as a later request's output with its old bytes kept until then, holds exactly that output",
              .timeLimit(.minutes(2)))
        func recycledPayloadHoldsExactlyTheNextOutput() async throws {
            let root = try SpoolRoot()  // the default sha256 model writes its output in order: no emptying first
            _ = try root.serve()
            try await root.warmUp()
            let big = payload(1, bytes: 20_000)
            try Files.write(root.incoming + "/big.bin", big)
            var info = stat()
            try #require(lstat(root.incoming + "/big.bin", &info) == 0)
            let bigInode = info.st_ino
            try await root.waitUntil("big.bin's output, and its payload moved to the trash") {
                Files.exists(root.output("big.bin")) && Files.files(under: root.path + "/.spool/claimed").isEmpty
            }

            let small = payload(2, bytes: 10)
            try Files.write(root.incoming + "/small.bin", small)
            try await root.waitUntil("small.bin's output") { Files.exists(root.output("small.bin")) }
            try #require(lstat(root.output("small.bin"), &info) == 0)
            try #require(info.st_ino == bigInode, "the newest recyclable file (big.bin's payload) became the output\n\(root.diagnostics)")
            #expect(Files.text(root.output("small.bin")) == #"{"sha256":"\#(SHA256.hex(small))","bytes":10}"# + "\n",
                    "no byte of big.bin's 20,000 is left after the output")
            #expect(Int(info.st_size) == #"{"sha256":"","bytes":10}"#.utf8.count + 64 + 1)
        }

        @Test("odd file names (spaces, newline, unicode, leading dash, 200 bytes) get their output at the mirrored path",
              .timeLimit(.minutes(2)))
        func oddNamesAreMirrored() async throws {
            let root = try SpoolRoot(config: config(model: "echo"))
            _ = try root.serve()
            try await root.warmUp()
            let long = String(repeating: "L", count: 196) + ".txt"
            let names = ["with  spaces .txt", "new\nline.txt", "café 日本.txt", "-leading-dash.txt", long]
            #expect(long.utf8.count == 200)
            for (i, name) in names.enumerated() {
                try Files.write(root.incoming + "/" + name, payload(i, bytes: 1000 + i))
            }
            try await root.waitUntil("an output for every odd name") { names.allSatisfy { Files.exists(root.output($0)) } }
            for (i, name) in names.enumerated() {
                #expect(Files.read(root.output(name)) == payload(i, bytes: 1000 + i), "output of \(name.debugDescription)")
            }
            try await root.waitUntil("an event for every odd name") { try root.events().count == names.count + 1 }
            let inputs = Set(try root.events().map(\.requestParameters.inputLocation))
            #expect(inputs == Set((names + ["warmup.txt"]).map { root.incoming + "/" + $0 }))
            #expect(Files.files(under: root.incoming).isEmpty && Files.files(under: root.errors).isEmpty, "\(root.diagnostics)")
        }

        @Test("a file written into a folder created a moment before (20 times, nested) is found; so is a folder moved in",
              .timeLimit(.minutes(2)))
        func newSubFoldersAreWatchedAtOnce() async throws {
            let root = try SpoolRoot(config: config(model: "echo"))
            _ = try root.serve()
            try await root.warmUp()
            var expected: [String: [UInt8]] = [:]
            try Files.makeDirectories(root.incoming + "/a/b/c")
            expected["a/b/c/first.txt"] = payload(0, bytes: 500)
            try Files.write(root.incoming + "/a/b/c/first.txt", expected["a/b/c/first.txt"]!)
            for i in 1...20 {
                let relative = "a/b/c/n\(i)/x/y/f\(i).txt"
                try Files.makeDirectories(root.incoming + "/a/b/c/n\(i)/x/y")
                expected[relative] = payload(i, bytes: 500)
                try Files.write(root.incoming + "/" + relative, expected[relative]!)
            }
            // A folder prepared elsewhere (same filesystem) and moved in whole.
            try Files.makeDirectories(root.base + "/staging/tree/d1/d2")
            expected["tree/d1/d2/g.txt"] = payload(99, bytes: 700)
            try Files.write(root.base + "/staging/tree/d1/d2/g.txt", expected["tree/d1/d2/g.txt"]!)
            try Files.rename(root.base + "/staging/tree", root.incoming + "/tree")

            try await root.waitUntil("outputs of all files in new folders") {
                expected.keys.allSatisfy { Files.exists(root.output($0)) }
            }
            for (relative, bytes) in expected {
                #expect(Files.read(root.output(relative)) == bytes, "output of \(relative)")
            }
            #expect(Files.files(under: root.outputs).count == expected.count + 1)
            #expect(Files.files(under: root.incoming).isEmpty)
        }

        @Test("files dropped before the first start and while the daemon was down are all processed", .timeLimit(.minutes(2)))
        func catchUpAfterDowntime() async throws {
            let root = try SpoolRoot(config: config(model: "echo"))
            let before = ["early1.txt", "sub/deep/early2.txt", "sub/early3.txt"]
            let during = ["down1.txt", "sub/deep/down2.txt", "newdir/x/down3.txt"]
            for (i, relative) in (before + during).enumerated() where before.contains(relative) {
                try Files.makeDirectories(root.incoming + "/" + (relative as NSString).deletingLastPathComponent)
                try Files.write(root.incoming + "/" + relative, payload(i, bytes: 2000))
            }
            let first = try root.serve()
            try await root.waitUntil("outputs of files dropped before start") { before.allSatisfy { Files.exists(root.output($0)) } }
            first.send(SIGTERM)
            #expect(try await first.waitForExit() == 0, "\(root.diagnostics)")

            for (i, relative) in (before + during).enumerated() where during.contains(relative) {
                try Files.makeDirectories(root.incoming + "/" + (relative as NSString).deletingLastPathComponent)
                try Files.write(root.incoming + "/" + relative, payload(i, bytes: 2000))
            }
            _ = try root.serve()
            try await root.waitUntil("outputs of files dropped while down") { during.allSatisfy { Files.exists(root.output($0)) } }
            for (i, relative) in (before + during).enumerated() {
                #expect(Files.read(root.output(relative)) == payload(i, bytes: 2000), "output of \(relative)")
            }
            try await root.waitUntil("six events") { try root.events().count >= 6 }
            #expect(Set(try root.events().map(\.inferenceId)).count == 6)
            let status = try await root.queueStatus()
            #expect(status.Succeeded == 6 && status.Queued == 0 && status.Running == 0 && status.Failed == 0)
            #expect(Files.files(under: root.incoming).isEmpty)
        }
    }
}
