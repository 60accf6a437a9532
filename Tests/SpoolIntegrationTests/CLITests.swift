import Foundation
import Glibc
import Testing

/// `default` runs echo; `bad` runs the fail model.
let echoAndFailConfig = config(model: "echo") + "\n[endpoints.bad]\nmodel = { builtin = \"fail\" }\n"

/// What `spool invoke` prints.
struct InvokeResponse: Decodable {
    var InferenceId: String
    var OutputLocation: String
    var FailureLocation: String
}

extension SpoolRoot {
    /// `spool invoke`, which must succeed and print its response.
    func invoke(_ arguments: [String], stdin: Data? = nil) async throws -> InvokeResponse {
        let result = try await run("invoke", arguments, stdin: stdin)
        guard result.status == 0 else { throw HarnessError("spool invoke \(arguments) exited \(result.status): \(result.stderr)") }
        let response = try decode(InvokeResponse.self, result.stdout, what: "spool invoke's output")
        // The default endpoint uses the root's folders; another one NAME/outputs and NAME/errors.
        let endpoint = arguments.firstIndex(of: "--endpoint").map { arguments[$0 + 1] } ?? "default"
        let folder = endpoint == "default" ? path : path + "/" + endpoint
        #expect(response.OutputLocation == "\(folder)/outputs/\(response.InferenceId).out")
        #expect(response.FailureLocation == "\(folder)/errors/\(response.InferenceId).error.json")
        return response
    }
}

extension IntegrationTests {
    @Suite(.serialized) struct CommandLine {
        @Test("invoke (file and stdin) queues; wait times out with 124 while nobody runs it; drain runs it; wait, cat and ls report it",
              .timeLimit(.minutes(2)))
        func invokeDrainWaitCat() async throws {
            let root = try SpoolRoot(config: echoAndFailConfig)
            let fromFile = payload(1, bytes: 300_000), fromStdin = payload(2, bytes: 5_000)
            try Files.write(root.base + "/in.bin", fromFile)
            let first = try await root.invoke([root.base + "/in.bin"])
            let second = try await root.invoke(["-"], stdin: Data(fromStdin))
            let third = try await root.invoke(["-", "--inference-id", "cli-id-1", "--content-type", "text/plain"], stdin: Data("three".utf8))
            #expect(third.InferenceId == "cli-id-1")
            #expect(Set([first.InferenceId, second.InferenceId, third.InferenceId]).count == 3)
            #expect(Files.read(root.base + "/in.bin") == fromFile, "invoke leaves the caller's file alone")

            let started = ContinuousClock.now
            let waiting = try await root.run("wait", [first.InferenceId, "--timeout", "0.5"])
            #expect(waiting.status == 124, "nobody runs it yet: \(waiting.stderr)")
            #expect(ContinuousClock.now - started < .seconds(10))
            #expect(try await root.request(first.InferenceId).State == "queued")

            let drain = try await root.run("drain")
            #expect(drain.status == 0, "all succeeded: \(drain.text)\(drain.stderr)")
            let waited = try await root.run("wait", [first.InferenceId, second.InferenceId, "cli-id-1", "--timeout", "10"])
            #expect(waited.status == 0, "\(waited.text)\(waited.stderr)")
            #expect([first.InferenceId, second.InferenceId, "cli-id-1"].allSatisfy { waited.text.contains($0) })
            for (id, bytes) in [(first.InferenceId, fromFile), (second.InferenceId, fromStdin), ("cli-id-1", Array("three".utf8))] {
                let cat = try await root.run("cat", [id])
                #expect(cat.status == 0 && [UInt8](cat.stdout) == bytes, "spool cat \(id)")
                #expect(Files.read("\(root.outputs)/\(id).out") == bytes)
            }
            #expect(try await root.request("cli-id-1").ContentType == "text/plain")

            let listed = try await root.list()
            #expect(listed.count == 3 && listed.allSatisfy { $0.State == "succeeded" })
            #expect(try await root.run("ls").status == 0)
            #expect(try await root.run("status").status == 0)
            #expect(try root.events().filter { $0.invocationStatus == "Completed" }.count == 3)
        }

        @Test("a request invoked while the daemon runs is waited for and read back with cat", .timeLimit(.minutes(2)))
        func invokeWithDaemon() async throws {
            let root = try SpoolRoot(config: echoAndFailConfig)
            _ = try root.serve()
            let bytes = payload(3, bytes: 70_000)
            let response = try await root.invoke(["-"], stdin: Data(bytes))
            let waited = try await root.run("wait", [response.InferenceId, "--timeout", "30"])
            #expect(waited.status == 0, "\(waited.text)\(waited.stderr)\n\(root.diagnostics)")
            let cat = try await root.run("cat", [response.InferenceId])
            #expect(cat.status == 0 && [UInt8](cat.stdout) == bytes)
        }

        @Test("a failed request: drain exits 1, wait exits 1, cat exits 1, and the marker is at FailureLocation", .timeLimit(.minutes(2)))
        func failedRequestThroughTheCLI() async throws {
            let root = try SpoolRoot(config: echoAndFailConfig)
            let good = try await root.invoke(["-"], stdin: Data("fine".utf8))
            let bad = try await root.invoke(["-", "--endpoint", "bad"], stdin: Data("doomed".utf8))
            #expect(bad.FailureLocation == root.path + "/bad/errors/\(bad.InferenceId).error.json")
            let drain = try await root.run("drain")
            #expect(drain.status == 1, "some failed: \(drain.text)\(drain.stderr)")
            #expect(try await root.run("wait", [bad.InferenceId, "--timeout", "10"]).status == 1)
            #expect(try await root.run("wait", [good.InferenceId, bad.InferenceId, "--timeout", "10"]).status == 1)
            #expect(try await root.run("wait", [good.InferenceId, "--timeout", "10"]).status == 0)
            let cat = try await root.run("cat", [bad.InferenceId])
            #expect(cat.status == 1 && cat.stdout.isEmpty && cat.stderr.contains("failed"), "\(cat.stderr)")
            let marker = try JSONDecoder().decode(Marker.self, from: try #require(FileManager.default.contents(atPath: bad.FailureLocation)))
            #expect(marker.failureCode == "ModelError" && marker.inferenceId == bad.InferenceId)
        }

        /// Usage mistakes and what each message must name.
        static func usageMistakes(_ root: SpoolRoot) -> [(command: String, arguments: [String], names: String)] {
            [
                ("invoke", [root.base + "/in.bin", "--ttl", "5"], "ttl"),
                ("invoke", [root.base + "/in.bin", "--inference-id", ""], "inference"),
                ("invoke", [root.base + "/in.bin", "--inference-id", "/../../../escaped"], "inference"),
                ("invoke", [root.base + "/in.bin", "--inference-id", ".."], "inference"),
                ("invoke", [root.base + "/in.bin", "--endpoint", "nope"], "nope"),
                ("wait", ["no-such-id"], "no-such-id"),
                ("cat", ["no-such-id"], "no-such-id"),
                ("status", ["no-such-id"], "no-such-id"),
            ]
        }

        @Test("usage errors (bad flags, unknown endpoint, unknown id) exit 2 naming the problem first, no stack trace, queue nothing",
              .timeLimit(.minutes(2)))
        func usageErrors() async throws {
            let root = try SpoolRoot(config: echoAndFailConfig)
            try Files.write(root.base + "/in.bin", "x")
            for (command, arguments, names) in Self.usageMistakes(root) {
                let result = try await root.run(command, arguments)
                #expect(result.status == 2, "spool \(command) \(arguments): \(result.stderr)")
                let first = result.stderr.split(separator: "\n").first.map(String.init) ?? ""
                #expect(first.lowercased().contains(names), "the first line names \(names): \(result.stderr)")
                #expect(!looksLikeACrash(result.stderr) && result.stdout.isEmpty)
            }
            #expect(try await root.list().isEmpty, "invalid invocations queue nothing")
            #expect(!Files.exists(root.base + "/escaped") && !Files.exists("/escaped"), "nothing is written outside the root")
        }

        @Test("a usage error is reported in one line (README: \"Usage errors exit 2 with one line naming the problem\")",
              .timeLimit(.minutes(2)))
        func usageErrorsAreOneLine() async throws {
            let root = try SpoolRoot(config: echoAndFailConfig)
            try Files.write(root.base + "/in.bin", "x")
            for (command, arguments, _) in Self.usageMistakes(root) {
                let result = try await root.run(command, arguments)
                #expect(result.stderr.split(separator: "\n").count == 1, "spool \(command) \(arguments) printed\n\(result.stderr)")
            }
        }

        @Test("spool init makes a root whose commented spool.toml is accepted (sha256 by default)", .timeLimit(.minutes(2)))
        func initMakesAUsableRoot() async throws {
            let root = try SpoolRoot()
            let made = try await root.run("init", [root.path], withRoot: false)
            #expect(made.status == 0, "\(made.stderr)")
            for folder in ["incoming", "outputs", "errors", ".spool"] { #expect(Files.fileType(root.path + "/" + folder) == S_IFDIR) }
            #expect(Files.exists(root.path + "/spool.toml"))
            try Files.write(root.incoming + "/hello.txt", "hello\n")
            #expect(try await root.run("drain").status == 0)
            #expect(Files.text(root.output("hello.txt")) == SHA256.modelOutput(Array("hello\n".utf8)))
        }
    }
}
