import AsyncHTTPClient
import Foundation
import Testing

extension HTTPAPITests {
    /// Back-pressure and shutdown: a full queue answers 503, and the server stops with the daemon.
    @Suite struct Lifecycle {
        @Test func fullQueueAnswers503() async throws {
            // The slow endpoint's model runs until the test says so (the file `go`, waited for at
            // most 60 s): the first request is running during every check below, however long
            // the test's own threads stall, and nothing waits once they are done.
            let go = FileManager.default.temporaryDirectory.path + "/spool-full-queue-go-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: go) }
            let slow = """
            [endpoints.slow]
            model = { command = ["sh", "-c", "i=0; while [ ! -e '\(go)' ] && [ $i -lt 3000 ]; do sleep 0.02; i=$((i+1)); done; cat"] }
            instances = { max = 1 }
            """
            try await TestServer.with(extraHTTP: "max_queued = 1", extra: slow) { server in
                let first = try await server.invoke(["Inference-Id": "running"], endpoint: "slow", body: Data("1".utf8))
                #expect(first.status == 202, "\(first.text)")
                let deadline = Date().addingTimeInterval(20)
                while try await server.daemon.engine.ledger.request(id: "running")?.state == .queued, Date() < deadline {
                    try await Task.sleep(for: .milliseconds(10))
                }
                let second = try await server.invoke(["Inference-Id": "waiting"], endpoint: "slow", body: Data("1".utf8))
                #expect(second.status == 202, "\(second.text)")
                let third = try await server.invoke(endpoint: "slow", body: Data("1".utf8))
                expectError(third, status: 503, type: "ServiceUnavailable")
                let fourth = try await server.invoke(body: Data("1".utf8))
                expectError(fourth, status: 503, type: "ServiceUnavailable", "max_queued counts every endpoint")
                #expect(FileManager.default.createFile(atPath: go, contents: Data()))
                _ = try await server.finished("waiting", within: 60)
                let after = try await server.invoke(body: Data("again".utf8))
                #expect(after.status == 202, "\(after.text)")
            }
        }

        @Test func gracefulShutdownClosesTheServer() async throws {
            var stopped: TestServer?
            try await TestServer.with { server in
                let ping = try await server.send(.GET, "/ping")
                #expect(ping.status == 200)
                stopped = server
            }
            let server = try #require(stopped)
            // `with` stopped it gracefully: the daemon's run returned, and nothing listens any more
            // (AsyncHTTPClient retries refused connections until the deadline, hence a short one).
            await #expect(throws: (any Error).self) { _ = try await server.send(.GET, "/ping", timeout: .seconds(1)) }
        }
    }
}
