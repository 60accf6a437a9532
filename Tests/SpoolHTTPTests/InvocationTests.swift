import Foundation
import SpoolCore
import Testing

extension HTTPAPITests {
    /// InvokeEndpointAsync with each kind of input, the locations it answers, and idempotence.
    @Suite struct Invocations {
        @Test func inlineBodyIsQueuedAndRun() async throws {
            try await TestServer.with { server in
                let answer = try await server.invoke(["Content-Type": "text/plain"], body: Data("hello inline".utf8))
                #expect(answer.status == 202, "\(answer.text)")
                let id = try #require(answer.json["InferenceId"] as? String)
                #expect(answer.header("content-type") == "application/json")
                #expect(answer.header("X-Amzn-SageMaker-OutputLocation") == "file://\(server.root)/outputs/\(id).out")
                #expect(answer.header("X-Amzn-SageMaker-FailureLocation") == "file://\(server.root)/errors/\(id).error.json")
                #expect(try await server.output(id) == "hello inline")
                let request = try #require(try await server.daemon.engine.ledger.request(id: id))
                #expect(request.source == .http)
                #expect(request.contentType == "text/plain")
            }
        }

        @Test func fileInsideTheRootAndInAllowedFolder() async throws {
            try await TestServer.with { server in
                try server.write("inside", to: server.root + "/data/in.txt")
                let inside = try await server.invoke(["InputLocation": "file://\(server.root)/data/in.txt", "Inference-Id": "in-root"])
                #expect(inside.status == 202, "\(inside.text)")
                #expect(inside.json["InferenceId"] as? String == "in-root")
                #expect(try await server.output("in-root") == "inside")
                #expect(FileManager.default.fileExists(atPath: server.root + "/data/in.txt"), "the user's file is copied, not taken")

                try server.write("allowed", to: server.base + "/allowed/a b.txt")
                let allowed = try await server.invoke(["InputLocation": "file://\(server.base)/allowed/a%20b.txt"])
                #expect(allowed.status == 202, "\(allowed.text)")
                #expect(try await server.output(try #require(allowed.json["InferenceId"] as? String)) == "allowed")
            }
        }

        @Test func filesOutsideAreRefused() async throws {
            try await TestServer.with { server in
                try server.write("secret", to: server.base + "/outside/secret.txt")
                let outside = try await server.invoke(["InputLocation": "file://\(server.base)/outside/secret.txt"])
                expectError(outside, "a file outside the root and the allowed folders")

                try FileManager.default.createSymbolicLink(atPath: server.root + "/escape.txt", withDestinationPath: server.base + "/outside/secret.txt")
                expectError(try await server.invoke(["InputLocation": "file://\(server.root)/escape.txt"]), "a symlink leading out")

                try FileManager.default.createSymbolicLink(atPath: server.root + "/escape-dir", withDestinationPath: server.base + "/outside")
                expectError(try await server.invoke(["InputLocation": "file://\(server.root)/escape-dir/secret.txt"]), "a folder link leading out")

                expectError(try await server.invoke(["InputLocation": "file://\(server.root)/../outside/secret.txt"]), "..")
                expectError(try await server.invoke(["InputLocation": "file://\(server.root)/.spool/ledger.sqlite"]), "the internal folder")
                expectError(try await server.invoke(["InputLocation": "s3://spool/.spool/ledger.sqlite"]), "the internal folder via a bucket")
                expectError(try await server.invoke(["InputLocation": "file://\(server.root)"]), "a folder")
                expectError(try await server.invoke(["InputLocation": "https://example.com/x"]), "another scheme")
                let all = try await server.daemon.engine.ledger.list(.init(limit: 100))
                #expect(all.isEmpty, "nothing refused is recorded")
            }
        }

        @Test func s3LocationsMapToBucketFolders() async throws {
            try await TestServer.with { server in
                try server.write("from the root bucket", to: server.root + "/uploads/x.csv")
                let answer = try await server.invoke(["InputLocation": "s3://spool/uploads/x.csv", "Inference-Id": "s3-root"])
                #expect(answer.status == 202, "\(answer.text)")
                #expect(answer.header("X-Amzn-SageMaker-OutputLocation") == "s3://spool/outputs/s3-root.out")
                #expect(answer.header("X-Amzn-SageMaker-FailureLocation") == "s3://spool/errors/s3-root.error.json")
                #expect(try await server.output("s3-root") == "from the root bucket")

                try server.write("from the data bucket", to: server.base + "/bucket/in/y.txt")
                let data = try await server.invoke(["InputLocation": "s3://data/in/y.txt", "Inference-Id": "s3-data"])
                #expect(data.status == 202, "\(data.text)")
                // Outputs are not in bucket "data"'s folder, so they are named in bucket "spool".
                #expect(data.header("X-Amzn-SageMaker-OutputLocation") == "s3://spool/outputs/s3-data.out")
                #expect(try await server.output("s3-data") == "from the data bucket")

                expectError(try await server.invoke(["InputLocation": "s3://nobucket/in/y.txt"]), "an unknown bucket")
                expectError(try await server.invoke(["InputLocation": "s3://data/"]), "no key")
                expectError(try await server.invoke(["InputLocation": "s3://data/../outside/secret.txt"]), "..")
            }
        }

        @Test func repeatedInferenceIdIsQueuedOnce() async throws {
            try await TestServer.with { server in
                let first = try await server.invoke(["Inference-Id": "once"], body: Data("one".utf8))
                let second = try await server.invoke(["Inference-Id": "once"], body: Data("two".utf8))
                #expect(first.status == 202 && second.status == 202, "\(first.text) \(second.text)")
                #expect(first.json["InferenceId"] as? String == "once")
                #expect(second.json["InferenceId"] as? String == "once")
                #expect(first.header("X-Amzn-SageMaker-OutputLocation") == second.header("X-Amzn-SageMaker-OutputLocation"))
                #expect(try await server.output("once") == "one")
                let all = try await server.daemon.engine.ledger.list(.init(limit: 100))
                #expect(all.map(\.id) == ["once"])
            }
        }

        @Test func pingMetricsAndRequestView() async throws {
            try await TestServer.with { server in
                let ping = try await server.send(.GET, "/ping")
                #expect(ping.status == 200)
                let accepted = try await server.invoke(["Inference-Id": "viewed", "Custom-Attributes": "trace=1"], body: Data("x".utf8))
                #expect(accepted.status == 202)
                _ = try await server.finished("viewed")
                let view = try await server.send(.GET, "/requests/viewed")
                #expect(view.status == 200)
                #expect(view.json["InferenceId"] as? String == "viewed")
                #expect(view.json["EndpointName"] as? String == "default")
                #expect(view.json["State"] as? String == "succeeded")
                #expect(view.json["CustomAttributes"] as? String == "trace=1")
                #expect(view.json["OutputLocation"] as? String == server.root + "/outputs/viewed.out")
                expectError(try await server.send(.GET, "/requests/nope"), status: 404, type: "ResourceNotFound")
                let metrics = try await server.send(.GET, "/metrics")
                #expect(metrics.status == 200)
                #expect(metrics.header("content-type")?.hasPrefix("text/plain") == true)
                #expect(metrics.text.contains("spool_approximate_backlog_size{endpoint=\"default\"} 0"))
                #expect(metrics.text.contains("spool_invocations_processed_total{endpoint=\"default\"} 1"))
            }
        }
    }
}
