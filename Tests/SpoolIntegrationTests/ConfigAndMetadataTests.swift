import Foundation
import Glibc
import Testing

/// Whether a command's stderr looks like a crash rather than a message for a user.
func looksLikeACrash(_ stderr: String) -> Bool {
    ["Stack dump", "Fatal error", "Current stack trace", "backtrace", "Segmentation fault", "Illegal instruction"]
        .contains { stderr.contains($0) }
}

struct BadConfig: Sendable, CustomTestStringConvertible {
    var name: String
    var toml: String
    /// Besides the file's path, what the message must name.
    var mentions: String
    var testDescription: String { name }

    static let all = [
        BadConfig(name: "unknown key", toml: config(model: "echo", "chunk_size = 4096"), mentions: "endpoints.default.chunk_size"),
        BadConfig(name: "chunk_bytes below 4 KiB", toml: config(model: "echo", "chunk_bytes = 10"), mentions: "endpoints.default.chunk_bytes"),
        BadConfig(name: "max_attempts above 10", toml: config(model: "echo", "max_attempts = 11"), mentions: "endpoints.default.max_attempts"),
        BadConfig(name: "wrong type", toml: config(model: "echo", #"invocation_timeout_seconds = "60""#),
                  mentions: "endpoints.default.invocation_timeout_seconds"),
        BadConfig(name: "unknown builtin model", toml: config(model: "nope"), mentions: "endpoints.default.model"),
        BadConfig(name: "unknown key in [spool]", toml: "[spool]\nfoo = 1\n", mentions: "spool.foo"),
        BadConfig(name: "syntax error", toml: "[endpoints.default\nmodel = { builtin = \"echo\" }\n", mentions: "line 1"),
    ]
}

extension IntegrationTests {
    @Suite(.serialized) struct ConfigurationAndMetadata {
        @Test("a bad spool.toml stops serve and drain at once with exit 2, naming the file and the key",
              .timeLimit(.minutes(2)), arguments: BadConfig.all)
        func badConfigurationIsRefused(_ bad: BadConfig) async throws {
            let root = try SpoolRoot(config: bad.toml)
            try Files.write(root.incoming + "/x.txt", "x")
            for command in ["serve", "drain"] {
                let started = ContinuousClock.now
                let result = try await root.run(command, timeout: .seconds(15))
                #expect(result.status == 2, "spool \(command): \(result.stderr)")
                #expect(ContinuousClock.now - started < .seconds(10), "spool \(command) must refuse promptly")
                #expect(result.stderr.contains(root.path + "/spool.toml"), "spool \(command) must name the file: \(result.stderr)")
                #expect(result.stderr.contains(bad.mentions), "spool \(command) must name \(bad.mentions): \(result.stderr)")
                #expect(!looksLikeACrash(result.stderr), "\(result.stderr)")
            }
            #expect(Files.exists(root.incoming + "/x.txt"), "nothing may be claimed under a refused configuration")
        }

        @Test("invalid sidecars fail their payload with InvalidRequest naming the problem, keep it, and the daemon goes on",
              .timeLimit(.minutes(2)))
        func invalidSidecarFailsTheRequest() async throws {
            let root = try SpoolRoot(config: config(model: "echo"))
            _ = try root.serve()
            try await root.warmUp()
            let cases = [
                ("x.txt", #"{"RequestTTLSeconds": 5}"#, "RequestTTLSeconds"),
                ("colour.txt", #"{"Colour": "red"}"#, "Colour"),
                ("garbled.txt", "this is not JSON", "JSON"),
                ("climb.txt", #"{"InferenceId": "../../etc/x"}"#, "InferenceId"),
            ]
            for (name, sidecar, _) in cases {
                try Files.write(root.incoming + "/" + name + ".meta.json", sidecar)
                try Files.write(root.incoming + "/" + name, "payload of \(name)")
            }
            try Files.write(root.incoming + "/after.txt", "after")
            try await root.waitUntil("the markers and the following good file") {
                Files.exists(root.output("after.txt")) && cases.allSatisfy { Files.exists(root.marker($0.0)) }
            }
            #expect(Files.text(root.output("after.txt")) == "after")
            for (name, _, mention) in cases {
                let marker = try root.readMarker(name)
                #expect(marker.failureCode == "InvalidRequest", "\(name)")
                #expect(marker.failureReason.contains(mention), "\(name): \(marker.failureReason)")
                let kept = try #require(marker.keptInputLocation, "the payload of \(name) must be kept")
                #expect(Files.text(kept) == "payload of \(name)")
                #expect(!Files.exists(root.output(name)))
                #expect(!Files.exists(root.output(name + ".meta.json")) && !Files.exists(root.marker(name + ".meta.json")),
                        "a sidecar is never a payload")
            }
            try await root.waitUntil("the events") { try root.events().count >= cases.count + 2 }
            #expect(try root.events().filter { $0.failureCode == "InvalidRequest" }.count == cases.count)
            #expect(Files.files(under: root.incoming).isEmpty, "sidecars leave incoming/ with their payload")
        }

        @Test("a valid sidecar gives the request its InferenceId, ContentType and Accept", .timeLimit(.minutes(2)))
        func validSidecarIsApplied() async throws {
            let root = try SpoolRoot(config: config(model: "echo"))
            _ = try root.serve()
            try Files.write(root.incoming + "/y.csv.meta.json",
                            #"{"InferenceId": "my-id-1", "ContentType": "text/csv", "Accept": "application/json", "CustomAttributes": "trace=1"}"#)
            try Files.write(root.incoming + "/y.csv", "a,b\n1,2\n")
            try await root.waitUntil("the output and event of y.csv") {
                try Files.exists(root.output("y.csv")) && !root.events().isEmpty
            }
            #expect(Files.text(root.output("y.csv")) == "a,b\n1,2\n")
            let event = try #require(try root.events().first)
            #expect(event.inferenceId == "my-id-1")
            #expect(event.requestParameters.contentType == "text/csv")
            #expect(event.requestParameters.accept == "application/json")
            #expect(event.responseParameters?.outputLocation == root.output("y.csv"))
            let request = try await root.request("my-id-1")
            #expect(request.State == "succeeded" && request.ContentType == "text/csv")
            #expect(Files.files(under: root.incoming).isEmpty)
        }
    }
}
