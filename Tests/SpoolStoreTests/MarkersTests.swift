import Foundation
import SpoolCore
import SpoolTestSupport
import Testing
@testable import SpoolStore

/// Error markers written whole, on real files.
@Suite struct MarkersTests {
    static func marker() -> ErrorMarker {
        var request = InferenceRequest(
            id: "r1", endpoint: "default", source: .drop, inputPath: "x.csv", claimToken: "t", payloadBytes: 3,
            ttlSeconds: 3600, timeoutSeconds: 60, maxAttempts: 1, receivedAt: Date(),
            outputLocation: "outputs/x.csv.out", failureLocation: "errors/x.csv.error.json")
        request.state = .failed
        request.failureCode = .modelError
        request.failureReason = "it broke"
        return ErrorMarker(request: request, inputLocation: "/r/incoming/x.csv", keptInputLocation: nil, failedAt: Date())
    }

    @Test func aMarkerIsWholeJSONEndingInANewlineAndNoTemporaryFileStays() async throws {
        try await withTemporaryDirectory(prefix: "spool-markers") { root in
            try writeFile(root + "/partial/.keep", "")
            try Markers.write(Self.marker(), to: root + "/errors/sub/x.csv.error.json", temporaryDirectory: root + "/partial")
            let text = try readFile(root + "/errors/sub/x.csv.error.json")
            #expect(text.hasSuffix("}\n"))
            let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            #expect(object["failureReason"] as? String == "it broke" && object["inferenceId"] as? String == "r1")
            #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/partial") == [".keep"])
        }
    }

    @Test func aMarkerThatCannotBeWrittenIsAnErrorNamingWhy() async throws {
        try await withTemporaryDirectory(prefix: "spool-markers") { root in
            try writeFile(root + "/partial/.keep", "")
            try writeFile(root + "/errors", "a file in the way")
            #expect(throws: SpoolStoreError.self) {
                try Markers.write(Self.marker(), to: root + "/errors/x.csv.error.json", temporaryDirectory: root + "/partial")
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/partial") == [".keep"], "nothing half-made stays")
        }
    }
}
