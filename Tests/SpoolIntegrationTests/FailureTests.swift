import Foundation
import Glibc
import Testing

/// Parses the markers' and events' ISO 8601 times (milliseconds, UTC).
func parseTime(_ text: String) -> Date? {
    try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))
}

extension IntegrationTests {
    @Suite(.serialized) struct Failures {
        @Test("links and FIFOs are claimed but never read: InvalidRequest markers say what they are, and the daemon goes on",
              .timeLimit(.minutes(2)))
        func linksAndFIFOsAreRefused() async throws {
            let root = try SpoolRoot(config: config(model: "echo"))
            _ = try root.serve()
            try await root.warmUp()
            let secret = "TOP SECRET \(UUID().uuidString)\n", inner = "INNER \(UUID().uuidString)\n"
            try Files.makeDirectories(root.base + "/outside/dir")
            try Files.write(root.base + "/outside/secret.txt", secret)
            try Files.write(root.base + "/outside/dir/inner.txt", inner)
            let hostname = Files.read("/etc/hostname")

            var expected: [(name: String, says: String, kind: mode_t)] = [("link.txt", "symbolic link", S_IFLNK), ("dirlink", "symbolic link", S_IFLNK)]
            #expect(symlink(root.base + "/outside/secret.txt", root.incoming + "/link.txt") == 0)
            #expect(symlink(root.base + "/outside/dir", root.incoming + "/dirlink") == 0)
            if hostname != nil {
                #expect(symlink("/etc/hostname", root.incoming + "/hostname") == 0)
                expected.append(("hostname", "symbolic link", S_IFLNK))
            }
            #expect(mkfifo(root.incoming + "/pipe", 0o644) == 0)
            expected.append(("pipe", "FIFO", S_IFIFO))
            try Files.write(root.incoming + "/after.txt", "after")

            try await root.waitUntil("markers for the links and the FIFO, then the following file's output") {
                expected.allSatisfy { Files.exists(root.marker($0.name)) } && Files.exists(root.output("after.txt"))
            }
            #expect(Files.text(root.output("after.txt")) == "after")
            for (name, says, kind) in expected {
                let marker = try root.readMarker(name)
                #expect(marker.failureCode == "InvalidRequest", "\(name)")
                #expect(marker.failureReason.contains(says), "\(name): \(marker.failureReason)")
                #expect(!Files.exists(root.output(name)), "\(name) must not be read")
                let kept = try #require(marker.keptInputLocation, "\(name) is kept")
                #expect(Files.fileType(kept) == kind, "\(name) is kept as it was: \(kept)")
            }
            // Nothing outside the root was read, moved or changed.
            #expect(Files.text(root.base + "/outside/secret.txt") == secret && Files.fileType(root.base + "/outside/secret.txt") == S_IFREG)
            #expect(Files.text(root.base + "/outside/dir/inner.txt") == inner)
            #expect(Files.read("/etc/hostname") == hostname)
            for output in Files.files(under: root.outputs) {
                let text = Files.text(root.outputs + "/" + output) ?? ""
                #expect(!text.contains(secret) && !text.contains(inner), "\(output) holds a file from outside the root")
            }
            #expect(Files.files(under: root.outputs).sorted() == ["after.txt.out", "warmup.txt.out"])
            #expect(Files.files(under: root.incoming).isEmpty)
        }

        @Test("the fail model leaves a complete ModelError marker, a Failed event and the kept payload", .timeLimit(.minutes(2)))
        func modelErrorMarker() async throws {
            let root = try SpoolRoot(config: config(model: "fail"))
            _ = try root.serve()
            try Files.write(root.incoming + "/f.txt", "doomed")
            try await root.waitUntil("the marker and its event") { try Files.exists(root.marker("f.txt")) && !root.events().isEmpty }
            let marker = try root.readMarker("f.txt")
            #expect(marker.failureCode == "ModelError")
            #expect(!marker.failureReason.isEmpty && marker.attempts == 1)
            #expect(marker.inputLocation == root.incoming + "/f.txt")
            let received = try #require(parseTime(marker.receivedTime), "receivedTime \(marker.receivedTime)")
            let failed = try #require(parseTime(marker.failedTime), "failedTime \(marker.failedTime)")
            #expect(received <= failed)
            #expect(Files.text(try #require(marker.keptInputLocation)) == "doomed")
            #expect(!Files.exists(root.output("f.txt")))

            let event = try #require(try root.events().first)
            #expect(event.inferenceId == marker.inferenceId && event.invocationStatus == "Failed")
            #expect(event.failureCode == "ModelError" && event.failureLocation == root.marker("f.txt") && event.failureReason != nil)
            #expect(event.responseParameters == nil)
            let request = try await root.request(marker.inferenceId)
            #expect(request.State == "failed" && request.FailureCode == "ModelError")
        }

        @Test("a payload over max_payload_bytes fails with PayloadTooLarge; a later success for the same path removes the stale marker",
              .timeLimit(.minutes(2)))
        func payloadTooLargeAndStaleMarker() async throws {
            let root = try SpoolRoot(config: config(model: "echo", "max_payload_bytes = 10"))
            _ = try root.serve()
            try Files.write(root.incoming + "/big.txt", "12345678901")
            try Files.write(root.incoming + "/fits.txt", "1234567890")
            try await root.waitUntil("the marker of big.txt and the output of fits.txt") {
                Files.exists(root.marker("big.txt")) && Files.exists(root.output("fits.txt"))
            }
            let marker = try root.readMarker("big.txt")
            #expect(marker.failureCode == "PayloadTooLarge" && marker.failureReason.contains("11"), "\(marker.failureReason)")
            #expect(!Files.exists(root.output("big.txt")))
            #expect(Files.text(root.output("fits.txt")) == "1234567890")

            try Files.write(root.incoming + "/big.txt", "small")
            try await root.waitUntil("the output of the second big.txt") { Files.exists(root.output("big.txt")) }
            #expect(Files.text(root.output("big.txt")) == "small")
            #expect(!Files.exists(root.marker("big.txt")), "a success removes the stale marker of its path")
        }

        @Test("a model running past invocation_timeout_seconds = 1 fails with InvocationTimeout within about 3 s", .timeLimit(.minutes(2)))
        func invocationTimeout() async throws {
            let root = try SpoolRoot(config: config(model: "sleep", "invocation_timeout_seconds = 1"))
            _ = try root.serve()
            try await root.warmUp(content: "0\n")  // the sleep model sleeps 0 s
            let dropped = ContinuousClock.now
            try Files.write(root.incoming + "/slow.txt", "5")
            try await root.waitUntil("the timeout marker", timeout: .seconds(10)) { Files.exists(root.marker("slow.txt")) }
            let elapsed = ContinuousClock.now - dropped
            let marker = try root.readMarker("slow.txt")
            #expect(marker.failureCode == "InvocationTimeout", "\(marker.failureReason)")
            #expect(elapsed < .seconds(3.5), "the marker came \(elapsed) after the drop")
            #expect(!Files.exists(root.output("slow.txt")))
        }
    }
}
