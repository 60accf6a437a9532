import Foundation
import SpoolCore
import Testing
@testable import SpoolExecutors

#if canImport(Glibc)
import Glibc
#endif

/// The container executor against the real example server (`examples/container/serve.py`) on
/// 127.0.0.1: the HTTP contract, failures as data, and cancellation.
@Suite struct ContainerExecutorTests {
    typealias Support = ContainerTestSupport

    @Test func headersReachTheServer() async throws {
        let executor = try Support.executor()
        defer { Task { await executor.shutdown() } }
        let fixture = try InvocationFixture(payload: Array("abc".utf8))
        let (result, progress) = try await fixture.run(
            metadata: executor, contentType: "text/csv", accept: "application/json", customAttributes: "mode=headers,trace=7"
        )
        #expect(result == .succeeded)
        #expect(progress == 3)
        let seen = try JSONSerialization.jsonObject(with: Data(fixture.output)) as? [String: Any]
        #expect(seen?["contentType"] as? String == "text/csv")
        #expect(seen?["accept"] as? String == "application/json")
        #expect(seen?["customAttributes"] as? String == "mode=headers,trace=7")
        #expect((seen?["inferenceId"] as? String)?.hasPrefix("test-") == true)
        #expect(seen?["contentLength"] as? Int == 3)
    }

    @Test func serverTransformsTheStreamedBody() async throws {
        let executor = try Support.executor(mode: "upper")
        defer { Task { await executor.shutdown() } }
        let payload = Array(String(repeating: "spool streams a payload\n", count: 12_000).utf8)
        let fixture = try InvocationFixture(payload: payload)
        let (result, progress) = try await fixture.run(executor, chunkBytes: 16 * 1024)
        #expect(result == .succeeded)
        #expect(progress == Int64(payload.count))
        #expect(fixture.output == payload.map { (97...122).contains($0) ? $0 - 32 : $0 })
    }

    @Test(arguments: [(500, true), (400, false)])
    func non2xxIsAModelErrorWithStatusAndBody(status: Int, retryable: Bool) async throws {
        let executor = try Support.executor()
        defer { Task { await executor.shutdown() } }
        let fixture = try InvocationFixture(payload: pseudoRandomBytes(count: 100_000))
        let (result, _) = try await fixture.run(metadata: executor, customAttributes: "mode=fail\(status)")
        let failure = try #require(result.failure)
        #expect(failure.code == .modelError)
        #expect(failure.retryable == retryable)
        #expect(failure.evidence?.httpStatus == status)
        #expect(failure.evidence?.tail?.contains("asked to fail (\(status))") == true)
        #expect(fixture.output.isEmpty)
    }

    @Test func crashMidRequestIsRetryableAndTheInstanceIsReplaced() async throws {
        let executor = try Support.executor()
        defer { Task { await executor.shutdown() } }
        let fixture = try InvocationFixture(payload: pseudoRandomBytes(count: 64 * 1024))
        let (warm, _) = try await fixture.run(executor)
        #expect(warm == .succeeded)
        let first = try #require(await executor.pool.processIDs().first)

        let (crashed, _) = try await fixture.run(metadata: executor, customAttributes: "mode=crash")
        let failure = try #require(crashed.failure)
        #expect(failure.code == .modelError)
        #expect(failure.retryable)
        #expect(failure.reason.contains("exited"))
        #expect(failure.evidence?.exitStatus == 3)
        #expect(failure.evidence?.tail?.contains("crashing mid-request") == true)
        #expect(await Support.eventually { !Support.isAlive(first) })

        let (again, _) = try await fixture.run(executor)
        #expect(again == .succeeded)
        let second = try #require(await executor.pool.processIDs().first)
        #expect(second != first)
        #expect(Support.isAlive(second))
    }

    @Test func cancellationStopsTheRequestPromptly() async throws {
        let executor = try Support.executor()
        defer { Task { await executor.shutdown() } }
        let fixture = try InvocationFixture(payload: Array("slow".utf8))
        // Warm up first, so the cancellation lands on the request rather than on a cold start.
        #expect(try await fixture.run(executor).0 == .succeeded)
        let started = ContinuousClock.now
        let task = Task { try await fixture.run(metadata: executor, customAttributes: "mode=slow,seconds=30") }
        #expect(await fixture.waitUntilRead(atLeast: 4), "the request's body is on its way to the server")
        task.cancel()
        let (result, _) = try await task.value
        #expect(result.failure?.code == .cancelled)
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test func aServerThatCannotStartFailsTheRequest() async throws {
        let executor = try Support.executor(serve: ["python3", "-c", "import sys; sys.stderr.write('no model here\\n'); sys.exit(7)"])
        defer { Task { await executor.shutdown() } }
        let fixture = try InvocationFixture(payload: Array("x".utf8))
        let started = ContinuousClock.now
        let (result, _) = try await fixture.run(executor)
        let failure = try #require(result.failure)
        #expect(failure.code == .modelError)
        #expect(failure.reason.contains("status 7"))
        #expect(failure.evidence?.tail?.contains("no model here") == true)
        #expect(ContinuousClock.now - started < .seconds(20))
    }

    @Test func urlModeUsesAServerSomeoneElseRuns() async throws {
        let port = try Support.freePorts(1)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["python3", Support.serveScript, "upper"]
        server.environment = ProcessInfo.processInfo.environment.merging(["SAGEMAKER_BIND_TO_PORT": "\(port)"]) { $1 }
        try server.run()
        defer {
            // SIGKILL: Foundation starts the child with the signals of its thread blocked, SIGTERM too.
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
        }
        let executor = URLExecutor(url: "http://127.0.0.1:\(port)/")
        defer { Task { await executor.shutdown() } }
        let fixture = try InvocationFixture(payload: Array("hello url".utf8))
        // The server may still be starting: the executor pings and fails retryably until it is up.
        var result = AttemptResult.failed(Failure(.modelError, "not run"))
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            result = try await fixture.run(executor).0
            if result == .succeeded || result.failure?.retryable != true { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(result == .succeeded)
        #expect(fixture.output == Array("HELLO URL".utf8))
    }

    @Test func urlModeWithNoServerIsARetryableModelError() async throws {
        let executor = URLExecutor(url: "http://127.0.0.1:\(try Support.freePorts(1))")
        defer { Task { await executor.shutdown() } }
        let fixture = try InvocationFixture(payload: Array("x".utf8))
        let (result, _) = try await fixture.run(executor)
        let failure = try #require(result.failure)
        #expect(failure.code == .modelError)
        #expect(failure.retryable)
        #expect(failure.reason.contains("/ping"))
    }
}
