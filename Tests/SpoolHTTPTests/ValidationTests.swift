import Foundation
import Testing

extension HTTPAPITests {
    /// Every bound SageMaker documents for InvokeEndpointAsync answers 400 ValidationError, and
    /// nothing is queued.
    @Suite struct Validation {
        static let cases: [(name: String, endpoint: String, fields: [String: String], body: Data?)] = [
            ("TTL 59", "default", ["RequestTTLSeconds": "59"], Data("x".utf8)),
            ("TTL 21601", "default", ["RequestTTLSeconds": "21601"], Data("x".utf8)),
            ("TTL not a number", "default", ["RequestTTLSeconds": "soon"], Data("x".utf8)),
            ("timeout 0", "default", ["InvocationTimeoutSeconds": "0"], Data("x".utf8)),
            ("timeout 3601", "default", ["InvocationTimeoutSeconds": "3601"], Data("x".utf8)),
            ("InferenceId empty", "default", ["Inference-Id": ""], Data("x".utf8)),
            ("InferenceId 65 characters", "default", ["Inference-Id": String(repeating: "a", count: 65)], Data("x".utf8)),
            ("InferenceId with a space", "default", ["Inference-Id": "a b"], Data("x".utf8)),
            ("InferenceId not ASCII", "default", ["Inference-Id": "café"], Data("x".utf8)),
            ("InferenceId with a slash", "default", ["Inference-Id": "a/b"], Data("x".utf8)),
            ("InferenceId climbing out", "default", ["Inference-Id": "/../../../x"], Data("x".utf8)),
            ("InferenceId .", "default", ["Inference-Id": "."], Data("x".utf8)),
            ("InferenceId ..", "default", ["Inference-Id": ".."], Data("x".utf8)),
            ("InferenceId .sidecar.json", "default", ["Inference-Id": ".sidecar.json"], Data("x".utf8)),
            ("CustomAttributes 1025 characters", "default", ["Custom-Attributes": String(repeating: "c", count: 1025)], Data("x".utf8)),
            ("CustomAttributes not ASCII", "default", ["Custom-Attributes": "naïve"], Data("x".utf8)),
            ("unknown endpoint", "nosuch", [:], Data("x".utf8)),
            ("invalid endpoint name", "bad_name", [:], Data("x".utf8)),
            ("endpoint name ending in a hyphen", "bad-", [:], Data("x".utf8)),
            ("endpoint name of 64 characters", String(repeating: "e", count: 64), [:], Data("x".utf8)),
            ("missing input file", "default", ["InputLocation": "file:///nonexistent/in.txt"], nil),
            ("missing input in the root", "default", ["InputLocation": "s3://spool/nope.txt"], nil),
            ("no input at all", "default", [:], nil),
            ("bad S3OutputPathExtension", "default", ["S3OutputPathExtension": "s3:bad"], Data("x".utf8)),
            ("S3OutputPathExtension leaving the outputs", "default", ["S3OutputPathExtension": "a/../../x"], Data("x".utf8)),
            ("S3OutputPathExtension with an empty folder", "default", ["S3OutputPathExtension": "a//b"], Data("x".utf8)),
            ("bad Filename", "default", ["Filename": "a.b.c"], Data("x".utf8)),
            ("Filename starting with a hyphen", "default", ["Filename": "-x"], Data("x".utf8)),
            ("Filename with a space", "default", ["Filename": "a b"], Data("x".utf8)),
            ("S3OutputPathExtension with a space", "default", ["S3OutputPathExtension": "a b"], Data("x".utf8)),
            ("S3OutputPathExtension with a question mark", "default", ["S3OutputPathExtension": "a?b"], Data("x".utf8)),
            ("body larger than 128,000 bytes", "default", [:], Data(repeating: 0x61, count: 128_001)),
        ]

        @Test func everyBoundIsEnforced() async throws {
            try await TestServer.with { server in
                for c in Self.cases {
                    let answer = try await server.invoke(c.fields, endpoint: c.endpoint, body: c.body)
                    expectError(answer, "\(c.name)")
                }
                try server.write("x", to: server.root + "/in.txt")
                let both = try await server.invoke(["InputLocation": "file://\(server.root)/in.txt"], body: Data("y".utf8))
                expectError(both, "InputLocation and a body")
                let all = try await server.daemon.engine.ledger.list(.init(limit: 100))
                #expect(all.isEmpty, "nothing invalid is recorded")
                let partial = try FileManager.default.contentsOfDirectory(atPath: server.root + "/.spool/partial")
                #expect(partial.isEmpty, "no copy of a refused payload is left behind: \(partial)")
            }
        }

        @Test func theRootsOwnFilesAreNeverInputs() async throws {
            try await TestServer.with { server in
                try server.write("{}\n", to: server.root + "/events.jsonl")
                for location in [
                    "file://\(server.root)/spool.toml", "s3://spool/spool.toml", "file://\(server.root)/events.jsonl",
                    "s3://spool/events.jsonl", "file://\(server.root)/.spool/ledger.sqlite", "s3://spool/.spool/ledger.sqlite",
                ] {
                    let answer = try await server.invoke(["InputLocation": location])
                    expectError(answer, "\(location)")
                }
                #expect(try await server.daemon.engine.ledger.list(.init(limit: 100)).isEmpty, "nothing is queued")
            }
        }

        @Test func boundsThemselvesAreAccepted() async throws {
            try await TestServer.with { server in
                let fields = [
                    "RequestTTLSeconds": "60", "InvocationTimeoutSeconds": "3600",
                    "Inference-Id": String(repeating: "z", count: 64),
                    "Custom-Attributes": String(repeating: "c", count: 1024),
                    "S3OutputPathExtension": "run-1/part", "Filename": "result.json",
                ]
                let answer = try await server.invoke(fields, body: Data(repeating: 0x62, count: 128_000))
                #expect(answer.status == 202, "\(answer.text)")
                let id = String(repeating: "z", count: 64)
                let request = try #require(try await server.daemon.engine.ledger.request(id: id))
                #expect(request.ttlSeconds == 60)
                #expect(request.timeoutSeconds == 3600)
                #expect(try await server.output(id).utf8.count == 128_000)
                // S3OutputPathExtension and Filename place the result, as on SageMaker.
                #expect(request.outputLocation == "outputs/run-1/part/result.json.out")
                #expect(answer.header("X-Amzn-SageMaker-OutputLocation") == "file://\(server.root)/outputs/run-1/part/result.json.out")
                #expect(answer.header("X-Amzn-SageMaker-FailureLocation") == "file://\(server.root)/errors/run-1/part/result.json.error.json")
            }
        }
    }
}
