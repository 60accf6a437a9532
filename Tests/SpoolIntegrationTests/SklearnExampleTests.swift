import Foundation
import Glibc
import SpoolTestSupport
import Testing

extension IntegrationTests {
    /// `examples/sklearn/`, as the README walks through it: a real scikit-learn model behind a
    /// container endpoint (CSV and JSON, over the folders and over HTTP) and a command endpoint
    /// with `split = "line"`, checked row for row against the model's own predictions.
    /// `scripts/test` installs scikit-learn (pip, only when missing).
    @Suite(.serialized) struct SklearnExample {
        static let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("examples/sklearn").path

        static let available: Bool = runProgramBlocking(["python3", "-c", "import sklearn, joblib"]).status == 0

        /// Runs python3 with `arguments` off the tests' shared threads; returns its standard output.
        static func python(_ arguments: [String]) async throws -> String {
            let run = await runProgram(["python3"] + arguments)
            guard run.status == 0 else { throw HarnessError("python3 \(arguments) exited \(run.status): \(run.stderr)") }
            return run.stdout
        }

        /// The model's own predictions for a CSV file, one digit a line.
        static func expected(root: String, csv: String) async throws -> [String] {
            let script = """
                import sys, joblib, numpy as np
                model = joblib.load(sys.argv[1] + "/model/model.joblib")
                data = np.loadtxt(sys.argv[2], delimiter=",", ndmin=2)
                print("\\n".join(str(int(p)) for p in model.predict(data)))
                """
            return try await python(["-c", script, root, csv]).split(separator: "\n").map(String.init)
        }

        @Test("a real scikit-learn model, as a model server and as a line-split command, predicts what the model itself predicts",
              .enabled(if: available, "scikit-learn is not installed (scripts/test installs it)"), .timeLimit(.minutes(4)))
        func predictionsMatchTheModel() async throws {
            let root = try SpoolRoot()
            let trained = try await Self.python([Self.example + "/train.py", root.path])
            #expect(trained.contains("right on 450 held out"), "\(trained)")
            // The example's port, made free for this run.
            let port = try freePort()
            let config = try #require(Files.text(root.path + "/spool.toml"))
            try Files.write(root.path + "/spool.toml", config.replacingOccurrences(of: "port = 18080", with: "port = \(try freePort())"))
            let sample = try #require(Files.text(root.path + "/sample.csv")).split(separator: "\n")
            let big = (0..<12_000).map { sample[$0 % sample.count] }.joined(separator: "\n") + "\n"
            try Files.write(root.base + "/big.csv", big)

            let daemon = try root.serve(["--listen", "127.0.0.1:\(port)"])
            try await root.waitUntil("the API") { rawHTTP(port: port, "GET", "/ping")?.status == 200 }
            try Files.makeDirectories(root.path + "/digits/incoming")
            try Files.makeDirectories(root.path + "/digits-lines/incoming")
            try Files.write(root.path + "/digits/incoming/sample.csv", Files.read(root.path + "/sample.csv") ?? [])
            try Files.write(root.path + "/digits-lines/incoming/big.csv", Array(big.utf8))
            // JSON in, JSON out, over HTTP.
            let rows = sample.prefix(3).map { "[" + $0 + "]" }.joined(separator: ",")
            let answer = try #require(rawHTTP(
                port: port, "POST", "/endpoints/digits/async-invocations", body: #"{"instances": [\#(rows)]}"#,
                headers: ["X-Amzn-SageMaker-Content-Type": "application/json", "X-Amzn-SageMaker-Accept": "application/json",
                          "X-Amzn-SageMaker-Inference-Id": "three-digits"]))
            #expect(answer.status == 202, "\(answer.body)")

            let sampleOut = root.path + "/digits/outputs/sample.csv.out"
            let bigOut = root.path + "/digits-lines/outputs/big.csv.out"
            let jsonOut = root.path + "/digits/outputs/three-digits.out"
            try await root.waitUntil("the three outputs", timeout: .seconds(180)) {
                let failed = ["digits", "digits-lines"].flatMap { Files.files(under: root.path + "/\($0)/errors") }
                guard failed.isEmpty else { throw HarnessError("requests failed: \(failed)\n\(root.diagnostics)") }
                return [sampleOut, bigOut, jsonOut].allSatisfy(Files.exists)
            }
            let expectedSample = try await Self.expected(root: root.path, csv: root.path + "/sample.csv")
            #expect(expectedSample.count == 450)
            let served = try #require(Files.text(sampleOut)).split(separator: "\n").map(String.init)
            #expect(served == expectedSample, "the model server, row for row")
            let split = try #require(Files.text(bigOut)).split(separator: "\n").map(String.init)
            #expect(split == (0..<12_000).map { expectedSample[$0 % expectedSample.count] }, "the line-split command, row for row and in order")
            let jsonBytes = try #require(Files.read(jsonOut))
            let json = try #require(try JSONSerialization.jsonObject(with: Data(jsonBytes)) as? [String: Any])
            #expect((json["predictions"] as? [Int])?.map(String.init) == Array(expectedSample.prefix(3)))
            // Its accuracy is what a digits classifier gets: it is a real model.
            let labels = try #require(Files.text(root.path + "/sample-labels.csv")).split(separator: "\n").map(String.init)
            let right = zip(served, labels).filter { $0 == $1 }.count
            #expect(right > 400, "\(right) of 450 right")
            // The server's log says where it loaded the model from.
            let logs = try await root.run("logs", ["digits"])
            #expect(logs.text.contains("loading the model from \(root.path)/model"), "\(logs.text.prefix(500))")
            #expect(daemon.isRunning)
        }
    }
}
