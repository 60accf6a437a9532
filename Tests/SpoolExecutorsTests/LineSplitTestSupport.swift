import Foundation
import SpoolCore
import Synchronization
import Testing
@testable import SpoolExecutors

#if canImport(Glibc)
import Glibc
#endif

/// `count` newline-terminated records of varied length: "record <i> xxx…".
func numberedLines(_ count: Int, from first: Int = 0) -> [UInt8] {
    var text = ""
    text.reserveCapacity(count * 40)
    for i in first..<(first + count) {
        text += "record \(i) " + String(repeating: "x", count: (i * 7919) % 61) + "\n"
    }
    return Array(text.utf8)
}

/// Names of the batch (input) files in `directory`; `allFiles` adds the outputs, which exist
/// by name only between their creation and their unlinking.
func batchFiles(in directory: String, allFiles: Bool = false) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
        .filter { $0.contains(".batch") && (allFiles || !$0.hasSuffix(".out")) }
}

extension InvocationFixture {
    /// A folder for batch files inside the fixture's.
    func makeBatchDirectory() throws -> String {
        let path = directory + "/batches"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Runs `executor` on the fixture as the daemon does, bounded by `limit` (nil and an issue
    /// recorded when it takes longer). Returns the result and every progress report.
    func runSplit(_ executor: any ModelExecutor, chunkBytes: Int = 64 * 1024, within limit: Duration = .seconds(120)) async -> (AttemptResult, [Int64])? {
        let (inputPath, outputPath) = (self.inputPath, self.outputPath)
        return await value(of: Task { await invokeSplit(executor, inputPath: inputPath, outputPath: outputPath, chunkBytes: chunkBytes) }, within: limit)
    }
}

/// `runSplit` unbounded, on the calling task (so cancelling it cancels the invocation).
func invokeSplit(_ executor: any ModelExecutor, inputPath: String, outputPath: String, chunkBytes: Int = 64 * 1024) async -> (AttemptResult, [Int64]) {
    let input = open(inputPath, O_RDONLY | O_CLOEXEC)
    let output = open(outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    #expect(input >= 0 && output >= 0)
    defer {
        close(input)
        close(output)
    }
    let size = (try? FileManager.default.attributesOfItem(atPath: inputPath)[.size] as? Int64) ?? 0
    let request = InferenceRequest(
        id: "split-test", endpoint: "default", source: .invoke, inputPath: "payload", claimToken: "t",
        payloadBytes: size, ttlSeconds: 60, timeoutSeconds: 60, maxAttempts: 1, receivedAt: Date(),
        outputLocation: "outputs/payload.out", failureLocation: "errors/payload.error.json"
    )
    let progress = ProgressLog()
    let invocation = Invocation(
        request: request, inputPath: inputPath, input: input, output: output, chunkBytes: chunkBytes,
        progress: { progress.record($0) }
    )
    return (await executor.invoke(invocation), progress.values)
}

/// A test double for the *inner* model of a line split: echoes each batch, remembering what it
/// was given, how many batches ran at once, and how many batch files were on disk meanwhile.
final class FakeBatchModel: ModelExecutor {
    struct State {
        /// Batch contents by start order (0-based).
        var batches: [Int: [UInt8]] = [:]
        var payloadBytes: [Int: Int64] = [:]
        var completionOrder: [Int] = []
        var started = 0
        var inFlight = 0
        var maxInFlight = 0
        var maxBatchFiles = 0
    }

    let state = Mutex(State())
    /// How long the batch started `n`-th sleeps before answering.
    let delay: @Sendable (Int) -> Duration
    /// A folder whose batch files are counted at each start.
    let watchedDirectory: String?

    init(watching directory: String? = nil, delay: @escaping @Sendable (Int) -> Duration = { _ in .zero }) {
        self.watchedDirectory = directory
        self.delay = delay
    }

    var snapshot: State { state.withLock { $0 } }

    /// Batches in input order.
    var batchesInOrder: [[UInt8]] {
        let batches = snapshot.batches
        return batches.keys.sorted().map { batches[$0]! }
    }

    func invoke(_ invocation: Invocation) async -> AttemptResult {
        let order = state.withLock { state in
            state.started += 1
            state.inFlight += 1
            state.maxInFlight = max(state.maxInFlight, state.inFlight)
            return state.started - 1
        }
        if let watchedDirectory {
            let count = batchFiles(in: watchedDirectory).count
            state.withLock { $0.maxBatchFiles = max($0.maxBatchFiles, count) }
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(invocation.input, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        state.withLock {
            $0.batches[order] = bytes
            $0.payloadBytes[order] = invocation.request.payloadBytes
        }
        let pause = delay(order)
        if pause > .zero { try? await Task.sleep(for: pause) }
        let written = bytes.withUnsafeBytes { write(invocation.output, $0.baseAddress, $0.count) }
        state.withLock {
            $0.inFlight -= 1
            $0.completionOrder.append(order)
        }
        return written == bytes.count ? .succeeded : .failed(Failure(.outputWriteFailed, "short write"))
    }
}

/// Expects `actual == expected`, reporting the first differing offset instead of both arrays.
func expectSameBytes(_ actual: [UInt8], _ expected: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
    guard actual != expected else { return }
    let common = min(actual.count, expected.count)
    let first = (0..<common).first { actual[$0] != expected[$0] } ?? common
    Issue.record(
        "the output differs from the expected bytes at offset \(first) (\(actual.count) bytes, expected \(expected.count))",
        sourceLocation: sourceLocation
    )
}

/// Splits `payload` into its records (lines with their newline; a last line may lack one).
func records(of payload: [UInt8]) -> [[UInt8]] {
    var result: [[UInt8]] = []
    var start = 0
    for (i, byte) in payload.enumerated() where byte == 0x0A {
        result.append(Array(payload[start...i]))
        start = i + 1
    }
    if start < payload.count { result.append(Array(payload[start...])) }
    return result
}
