import Foundation
import Glibc
import Testing

extension IntegrationTests {
    @Suite(.serialized) struct Names {
        @Test("names of 245 to 255 bytes: every outcome is visible and consistent, under a shortened name",
              .timeLimit(.minutes(2)))
        func longNamesGetShortenedResults() async throws {
            let root = try SpoolRoot(config: config(model: "echo") + """

                [endpoints.failing]
                model = { builtin = "fail" }
                """)
            _ = try root.serve()
            try await root.warmUp()
            let lengths = [245, 248, 251, 252, 255]
            for length in lengths {
                let name = String(repeating: "n", count: length - 4) + ".txt"
                try Files.write(root.incoming + "/" + name, "ok \(length)")
                try Files.write(root.path + "/failing/incoming/" + name, "bad \(length)")
            }
            try await root.waitUntil("an event for every request") { try root.events().count >= 1 + 2 * lengths.count }
            let events = try root.events()
            for event in events where event.requestParameters.endpointName == "default" && !event.inferenceId.isEmpty {
                guard event.requestParameters.inputLocation.hasSuffix(".txt"), !event.requestParameters.inputLocation.hasSuffix("warmup.txt") else { continue }
                #expect(event.invocationStatus == "Completed", "\(event.requestParameters.inputLocation): \(event.failureReason ?? "")")
                let output = try #require(event.responseParameters?.outputLocation)
                #expect(URL(fileURLWithPath: output).lastPathComponent.utf8.count <= 255)
                #expect(Files.text(output)?.hasPrefix("ok ") == true, "the output is where the event says: \(output)")
                let status = try await root.request(event.inferenceId)
                #expect(status.State == "succeeded" && status.OutputLocation == output)
            }
            let failures = events.filter { $0.requestParameters.endpointName == "failing" }
            #expect(failures.count == lengths.count)
            for event in failures {
                #expect(event.failureCode == "ModelError", "\(event.failureReason ?? "")")
                let marker = try #require(event.failureLocation)
                #expect(Files.exists(marker), "the marker is where the event says: \(marker)")
                #expect(URL(fileURLWithPath: marker).lastPathComponent.utf8.count <= 255)
            }
            #expect(Files.files(under: root.outputs).count == 1 + lengths.count)
        }

        /// Writes `content` to a file whose name is `name` as raw bytes (not necessarily UTF-8).
        static func writeRaw(folder: String, name: [UInt8], _ content: String) throws {
            let path = (Array(folder.utf8) + [0x2F] + name + [0]).map { CChar(bitPattern: $0) }
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0 else { throw HarnessError("open: errno \(errno)") }
            _ = content.withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }

        @Test("names that are not UTF-8, present at start or dropped later, are taken under a %XX name, never left behind",
              .timeLimit(.minutes(2)))
        func namesThatAreNotUTF8AreTaken() async throws {
            let root = try SpoolRoot(config: config(model: "echo"))
            try Self.writeRaw(folder: root.incoming, name: Array("early".utf8) + [0xFF] + Array(".txt".utf8), "early")
            _ = try root.serve()
            try await root.warmUp()
            try Self.writeRaw(folder: root.incoming, name: Array("late".utf8) + [0xC3, 0x28] + Array(".txt".utf8), "late")
            try await root.waitUntil("both outputs") {
                Files.exists(root.output("early%FF.txt")) && Files.exists(root.output("late%C3(.txt"))
            }
            #expect(Files.text(root.output("early%FF.txt")) == "early")
            #expect(Files.text(root.output("late%C3(.txt")) == "late")
            #expect(Files.files(under: root.incoming).isEmpty, "nothing stays in incoming/")
        }

        @Test("the same name dropped twice with concurrency: the newer request's result wins, whatever finishes last",
              .timeLimit(.minutes(2)))
        func newestRequestForAPathWins() async throws {
            // The model sleeps as many seconds as the payload's first line says, then fails on
            // "fail" and echoes anything else.
            let script = #"read n rest; sleep "$n"; [ "$rest" = fail ] && { echo failing >&2; exit 3; }; echo "$n $rest""#
            let root = try SpoolRoot(config: """
                [endpoints.default]
                model = { command = ["sh", "-c", \(String(reflecting: script))] }
                instances = { max = 2 }
                """)
            _ = try root.serve()
            // An older success finishing after a newer one
            try Files.write(root.incoming + "/same.txt", "2 older")
            _ = try await root.waitForState("running")
            try Files.write(root.incoming + "/same.txt", "0 newer")
            // An older failure finishing after a newer success
            try Files.write(root.incoming + "/other.txt", "3 fail")
            try await root.waitUntil("the older other.txt running") {
                (try? FileManager.default.contentsOfDirectory(atPath: root.incoming))?.contains("other.txt") == false
            }
            try await root.waitUntil("same.txt's newer result") { Files.text(root.output("same.txt")) == "0 newer\n" }
            try Files.write(root.incoming + "/other.txt", "0 fine")
            try await root.waitUntil("every request finished") { try root.events().count >= 4 }
            #expect(Files.text(root.output("same.txt")) == "0 newer\n", "the older success does not replace the newer output")
            #expect(Files.text(root.output("other.txt")) == "0 fine\n")
            #expect(!Files.exists(root.marker("other.txt")), "the older failure leaves no marker beside the newer success")
        }
    }
}

extension IntegrationTests.Names {
    @Test("a payload still being written after it was taken fails with InvalidRequest naming the sizes, never a mixed output",
          .timeLimit(.minutes(2)))
    func payloadRewrittenWhileProcessedFails() async throws {
        // The model reads the payload only once the test says so (the file `go`, waited for at
        // most 60 s): the second write lands while it runs however long the test's threads stall.
        let go = FileManager.default.temporaryDirectory.path + "/spool-rewrite-go-" + UUID().uuidString
        defer { unlink(go) }
        let root = try SpoolRoot(config: """
            [endpoints.default]
            model = { command = ["sh", "-c", "i=0; while [ ! -e '\(go)' ] && [ $i -lt 3000 ]; do sleep 0.02; i=$((i+1)); done; cat"] }
            """)
        _ = try root.serve()
        // A writer that breaks the drop contract: it closes one descriptor (the daemon takes the
        // file at that close) and goes on writing through another.
        let path = root.incoming + "/growing.txt"
        let first = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let second = open(path, O_WRONLY | O_APPEND)
        defer { close(second) }
        _ = write(first, "first part\n", 11)
        close(first)
        _ = try await root.waitForState("running")
        _ = write(second, "second part\n", 12)
        try Files.write(go, "")
        try await root.waitUntil("the marker") { Files.exists(root.marker("growing.txt")) }
        let marker = try root.readMarker("growing.txt")
        #expect(marker.failureCode == "InvalidRequest")
        #expect(marker.failureReason.contains("11 bytes") && marker.failureReason.contains("23 now"), "\(marker.failureReason)")
        #expect(!Files.exists(root.output("growing.txt")))
    }
}
