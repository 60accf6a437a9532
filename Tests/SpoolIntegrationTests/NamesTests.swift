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
