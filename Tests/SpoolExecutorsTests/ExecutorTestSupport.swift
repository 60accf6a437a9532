import Foundation
import SpoolCore
import SpoolTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A temporary folder with a payload file and an output file, removed on deinit.
final class InvocationFixture: Sendable {
    let directory: String
    let inputPath: String
    let outputPath: String
    /// The progress of the latest `run`.
    let progress = ProgressRecorder()
    /// The payload's descriptor while `run` runs (-1 otherwise).
    private let input = Mutex<Int32>(-1)

    init(payload: [UInt8]) throws {
        directory = try makeTemporaryDirectory(prefix: "spool-executor")
        inputPath = directory + "/payload"
        outputPath = directory + "/output"
        try Data(payload).write(to: URL(fileURLWithPath: inputPath))
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    var output: [UInt8] { (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: outputPath)))) ?? [] }

    /// Runs `executor` on the payload with real descriptors, as the daemon does.
    func run(_ executor: any ModelExecutor, chunkBytes: Int = 64 * 1024, timeoutSeconds: Int = 30) async throws -> (AttemptResult, Int64) {
        let input = open(inputPath, O_RDONLY | O_CLOEXEC)
        let output = open(outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        #expect(input >= 0 && output >= 0)
        defer {
            close(input)
            close(output)
        }
        let size = (try FileManager.default.attributesOfItem(atPath: inputPath)[.size] as? Int64) ?? 0
        let request = InferenceRequest(
            id: "test-\(UUID().uuidString)", endpoint: "default", source: .invoke, inputPath: "payload", claimToken: "t",
            payloadBytes: size, ttlSeconds: 60, timeoutSeconds: timeoutSeconds, maxAttempts: 1, receivedAt: Date(),
            outputLocation: "outputs/payload.out", failureLocation: "errors/payload.error.json"
        )
        let progress = self.progress
        progress.record(0)
        let invocation = Invocation(
            request: request, inputPath: inputPath, input: input, output: output, chunkBytes: chunkBytes,
            progress: { progress.record($0) }
        )
        self.input.withLock { $0 = input }
        let result = await executor.invoke(invocation)
        self.input.withLock { $0 = -1 }
        return (result, progress.latest)
    }

    /// Waits (at most `limit`) until the running model has read `bytes` of its payload, by its
    /// progress reports or by the payload descriptor's offset (for models that read before they
    /// report): the event tests wait for before they cancel or stop a model mid-request.
    func waitUntilRead(atLeast bytes: Int64 = 1, within limit: Duration = .seconds(20)) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            // Only while a run is on (it resets the progress first): an earlier run's progress
            // says nothing of this one.
            let offset = input.withLock { $0 < 0 ? nil : Int64(lseek($0, 0, SEEK_CUR)) }
            if let offset, max(offset, progress.latest) >= bytes { return true }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return false
    }
}

/// Remembers the last progress report.
final class ProgressRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int64 = 0

    func record(_ bytes: Int64) {
        lock.lock()
        value = bytes
        lock.unlock()
    }

    var latest: Int64 {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
func pseudoRandomBytes(count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
    // Eight bytes a step into raw memory: the tests are built unoptimised, where a `map` over
    // megabytes held a shared test thread for seconds.
    var state = seed
    return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        let raw = UnsafeMutableRawBufferPointer(buffer)
        var offset = 0
        while offset < count {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            let word = state.littleEndian
            let n = min(8, count - offset)
            withUnsafeBytes(of: word) { raw.baseAddress!.advanced(by: offset).copyMemory(from: $0.baseAddress!, byteCount: n) }
            offset += n
        }
        initialized = count
    }
}

/// Runs a system tool on a file and returns its standard output.
func toolOutput(_ tool: String, _ arguments: [String]) async -> String {
    await runProgram([tool] + arguments).stdout
}
