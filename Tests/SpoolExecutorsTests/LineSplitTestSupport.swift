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
    // Bytes, not string interpolation: the tests are built unoptimised, where 200,000 lines made
    // as strings held a thread every test's tasks share for seconds.
    var bytes: [UInt8] = []
    bytes.reserveCapacity(count * 45)
    let prefix = Array("record ".utf8)
    for i in first..<(first + count) {
        bytes += prefix
        bytes += String(i).utf8
        bytes.append(UInt8(ascii: " "))
        bytes += repeatElement(UInt8(ascii: "x"), count: (i * 7919) % 61)
        bytes.append(UInt8(ascii: "\n"))
    }
    return bytes
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
        /// Batch contents by their place in the input (0-based).
        var batches: [Int: [UInt8]] = [:]
        var payloadBytes: [Int: Int64] = [:]
        var completionOrder: [Int] = []
        var started = 0
        var inFlight = 0
        var maxInFlight = 0
        var maxBatchFiles = 0
        /// Batches that have answered, and the batches waiting for one of them (`after`).
        var completed: Set<Int> = []
        var waiting: [Int: [CheckedContinuation<Void, Never>]] = [:]
    }

    let state = Mutex(State())
    /// How long batch `n` (0-based, in input order) sleeps before answering.
    let delay: @Sendable (Int) -> Duration
    /// The batch (0-based, in input order) that must answer before batch `n` does, if any:
    /// an order of completion that does not depend on the machine's speed.
    let after: @Sendable (Int) -> Int?
    /// A folder whose batch files are counted at each start.
    let watchedDirectory: String?

    init(
        watching directory: String? = nil, after: @escaping @Sendable (Int) -> Int? = { _ in nil },
        delay: @escaping @Sendable (Int) -> Duration = { _ in .zero }
    ) {
        self.watchedDirectory = directory
        self.after = after
        self.delay = delay
    }

    /// Returns once batch `order` has answered, or after `limit` (the test then fails on the order
    /// it checks, instead of hanging).
    private func waitFor(_ order: Int, limit: Duration = .seconds(30)) async {
        let timer = Task {
            guard (try? await Task.sleep(for: limit)) != nil else { return }  // cancelled: answered in time
            let waiters = state.withLock { $0.waiting.removeValue(forKey: order) ?? [] }
            waiters.forEach { $0.resume() }
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { state -> Bool in
                if state.completed.contains(order) { return true }
                state.waiting[order, default: []].append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
        timer.cancel()
    }

    var snapshot: State { state.withLock { $0 } }

    /// Batches in input order.
    var batchesInOrder: [[UInt8]] {
        let batches = snapshot.batches
        return batches.keys.sorted().map { batches[$0]! }
    }

    func invoke(_ invocation: Invocation) async -> AttemptResult {
        // The batch's place in the input, from its file's name (`….batch<n>`, from 1): batches may
        // reach the model in another order than they were cut (they start on several threads).
        let number = invocation.inputPath.range(of: ".batch", options: .backwards).flatMap { Int(invocation.inputPath[$0.upperBound...]) }
        let order = state.withLock { state in
            state.started += 1
            state.inFlight += 1
            state.maxInFlight = max(state.maxInFlight, state.inFlight)
            return number.map { $0 - 1 } ?? state.started - 1
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
        if let first = after(order) { await waitFor(first) }
        let written = bytes.withUnsafeBytes { write(invocation.output, $0.baseAddress, $0.count) }
        let waiters = state.withLock { state in
            state.inFlight -= 1
            state.completionOrder.append(order)
            state.completed.insert(order)
            return state.waiting.removeValue(forKey: order) ?? []
        }
        waiters.forEach { $0.resume() }
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
