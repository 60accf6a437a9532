import Foundation
import SpoolCore
import Testing
@testable import SpoolExecutors

/// The behaviour every executor of an "echo" model must have, whatever runs it: the output is the
/// payload, byte for byte, at every size around the chunk boundaries, with progress reported.
/// Later executors (command `cat`, a container echo server) join `echoExecutors`.
@Suite struct ExecutorConformanceTests {
    static let chunk = 64 * 1024
    static let sizes = [0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 17, 4 << 20]

    static var echoExecutors: [String] { ["builtin echo", "command cat", "container echo"] }

    static func executor(named name: String) -> any ModelExecutor {
        switch name {
        case "command cat": CommandExecutor(argv: ["cat"])
        case "container echo": ContainerTestSupport.sharedEcho
        default: BuiltinExecutor(model: .echo)
        }
    }

    @Test(arguments: echoExecutors, sizes)
    func echoReturnsThePayloadByteForByte(executor name: String, size: Int) async throws {
        let payload = pseudoRandomBytes(count: size, seed: UInt64(size) + 1)
        let fixture = try InvocationFixture(payload: payload)
        let (result, progress) = try await fixture.run(Self.executor(named: name), chunkBytes: Self.chunk)
        #expect(result == .succeeded)
        #expect(fixture.output == payload)
        #expect(progress == Int64(size))
    }
}

@Suite struct BuiltinModelTests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    ])
    func sha256MatchesKnownVectors(text: String, digest: String) async throws {
        let fixture = try InvocationFixture(payload: Array(text.utf8))
        let (result, _) = try await fixture.run(BuiltinExecutor(model: .sha256))
        #expect(result == .succeeded)
        #expect(String(decoding: fixture.output, as: UTF8.self) == "{\"sha256\":\"\(digest)\",\"bytes\":\(text.utf8.count)}\n")
    }

    @Test func sha256AcrossManyChunksMatchesSha256sum() async throws {
        let payload = pseudoRandomBytes(count: 5_000_003)
        let fixture = try InvocationFixture(payload: payload)
        let (result, progress) = try await fixture.run(BuiltinExecutor(model: .sha256), chunkBytes: 4096)
        #expect(result == .succeeded)
        #expect(progress == 5_000_003)
        let expected = String(await toolOutput("/usr/bin/sha256sum", [fixture.inputPath]).prefix(64))
        #expect(String(decoding: fixture.output, as: UTF8.self) == "{\"sha256\":\"\(expected)\",\"bytes\":5000003}\n")
    }

    @Test func wcCountsLikeWcAcrossChunkBoundaries() async throws {
        // Words and line ends straddle the 4 KiB chunk boundaries; every kind of space appears.
        var text = ""
        for i in 0..<3000 {
            text += ["alpha ", "beta\t", "gamma\n", "  ", "delta\r\n", "eps\u{0B}", "z\u{0C}", "long\(i)word"][i % 8]
        }
        let payload = Array(text.utf8)
        let fixture = try InvocationFixture(payload: payload)
        let (result, _) = try await fixture.run(BuiltinExecutor(model: .wc), chunkBytes: 4096)
        #expect(result == .succeeded)
        let fields = await toolOutput("/usr/bin/wc", ["-l", "-w", "-c", fixture.inputPath]).split(separator: " ").prefix(3)
        let expected = "{\"lines\":\(fields[fields.startIndex]),\"words\":\(fields[fields.startIndex + 1]),\"bytes\":\(fields[fields.startIndex + 2])}\n"
        #expect(String(decoding: fixture.output, as: UTF8.self) == expected)
    }

    @Test func failModelFailsWithEvidence() async throws {
        let fixture = try InvocationFixture(payload: Array("x".utf8))
        let (result, _) = try await fixture.run(BuiltinExecutor(model: .fail))
        guard case .failed(let failure) = result else {
            Issue.record("fail model succeeded")
            return
        }
        #expect(failure.code == .modelError)
        #expect(failure.evidence?.tail?.isEmpty == false)
    }

    @Test func sleepModelStopsPromptlyWhenCancelled() async throws {
        let fixture = try InvocationFixture(payload: Array("30".utf8))
        let started = ContinuousClock.now
        let task = Task { try await fixture.run(BuiltinExecutor(model: .sleep)) }
        #expect(await fixture.waitUntilRead(atLeast: 2), "the model read how long to sleep")
        task.cancel()
        let (result, _) = try await task.value
        #expect(result == .failed(Failure(.cancelled, "The invocation was stopped.")))
        // Well under the 30 s the model would sleep, with room for a loaded machine.
        #expect(ContinuousClock.now - started < .seconds(20))
    }

    @Test func sleepModelRefusesAPayloadThatIsNotANumber() async throws {
        let fixture = try InvocationFixture(payload: Array("soon".utf8))
        let (result, _) = try await fixture.run(BuiltinExecutor(model: .sleep))
        guard case .failed(let failure) = result else {
            Issue.record("accepted a non-number")
            return
        }
        #expect(failure.code == .modelError)
    }

    @Test func streamingStopsWhenCancelled() async throws {
        // A 16 GiB sparse payload read 4 KiB at a time takes long enough to be cancelled mid-way.
        let fixture = try InvocationFixture(payload: [])
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: fixture.inputPath))
        try handle.truncate(atOffset: 16 << 30)
        try handle.close()
        let task = Task { try await fixture.run(BuiltinExecutor(model: .sha256), chunkBytes: 4096) }
        #expect(await fixture.waitUntilRead(atLeast: 1), "the model is reading")
        task.cancel()
        let (result, progress) = try await task.value
        #expect(result == .failed(Failure(.cancelled, "The invocation was stopped.")))
        #expect(progress < 16 << 30)
    }
}
