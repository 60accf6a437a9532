import Foundation
import Glibc
import Testing

extension IntegrationTests {
    @Suite(.serialized) struct PublicationRepair {
        @Test("a marker that cannot be written is written once it can: the request is not marked notified before",
              .timeLimit(.minutes(2)))
        func markerWrittenOnceItCanBe() async throws {
            let root = try SpoolRoot(config: config(model: "fail"))
            // `errors` is a file, so no marker can be made below it.
            try Files.write(root.path + "/errors", "in the way")
            _ = try root.serve()
            try Files.write(root.incoming + "/job.txt", "x")
            try await root.waitUntil("the failure's event") { try root.events().contains { $0.failureCode == "ModelError" } }
            #expect(!Files.exists(root.marker("job.txt")))
            // When the folder can be made again
            try FileManager.default.removeItem(atPath: root.path + "/errors")
            try Files.makeDirectories(root.path + "/errors")
            try await root.waitUntil("the marker", timeout: .seconds(40)) { Files.exists(root.marker("job.txt")) }
            #expect(try root.readMarker("job.txt").failureCode == "ModelError")
            #expect(try root.events().filter { $0.failureCode == "ModelError" }.count == 1, "the event is not written twice")
        }

        @Test("a torn last line of events.jsonl is repaired at start: every line stays whole JSON", .timeLimit(.minutes(2)))
        func tornTailRepairedAtStart() async throws {
            let root = try SpoolRoot(config: config(model: "echo"))
            let first = try root.serve()
            try await root.warmUp()
            try await root.waitUntil("the warm-up event") { try root.events().count == 1 }
            first.send(SIGTERM)
            #expect(try await first.waitForExit() == 0)
            // A crash (or a full disk) in the middle of a line
            let whole = try #require(Files.read(root.eventsPath))
            try Files.write(root.eventsPath, whole + Array(#"{"eventVersion":"1.0","eventSou"#.utf8))
            _ = try root.serve()
            try Files.write(root.incoming + "/after.txt", "after")
            try await root.waitUntil("the next event") { (Files.text(root.eventsPath) ?? "").contains("after.txt") }
            let lines = (Files.text(root.eventsPath) ?? "").split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.last == "", "the file ends with a newline")
            for line in lines.dropLast() {
                #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil, "not whole JSON: \(line)")
            }
            #expect(try root.events().count == 2)
        }
    }
}
