import Foundation
import SpoolCore

#if canImport(Glibc)
import Glibc
import SpoolSystem
#endif

/// `split = "line"`, SageMaker Batch Transform's `SplitType=Line` for one request:
/// the payload's newline-delimited records are cut into batches, the batches run concurrently
/// through an inner executor, and their outputs are appended to the request's output in input
/// order.
///
/// What the model sees, per batch: one ordinary invocation whose payload (a command's stdin, a
/// container's request body, a builtin's input) is a run of *complete* lines, exactly as they
/// are in the payload, each with its `\n` (only the payload's last line may lack one). A batch
/// holds at most `maxBatchRecords` records and `maxBatchBytes` bytes; a single record longer than
/// `maxBatchBytes` is not refused but sent as a batch of its own. The request's metadata
/// (InferenceId, content type, accept, custom attributes) is the same for every batch;
/// `SPOOL_INPUT_PATH` names the batch's file and `SPOOL_PAYLOAD_BYTES` is the batch's size.
/// A model should write one output record per input record so that outputs line up, but Spool
/// neither requires nor checks it.
///
/// Ordering: the output is batch 1's output, then batch 2's, and so on — input order, whatever
/// order the batches finish in. Outputs are appended as soon as every earlier batch is done.
///
/// Resources: the payload is read once, sequentially, through one `chunkBytes` buffer; at most
/// `concurrency` batches run at once and at most `readAhead` (2 × `concurrency`) are cut and not
/// yet appended, so memory is constant and the batch files on disk (in `temporaryDirectory`) are
/// bounded by `readAhead × maxBatchBytes` plus their outputs, whatever the payload's size.
/// Progress is the payload bytes whose batches' outputs are in the output.
///
/// Failures: the first batch to fail stops the others and fails the request with its code,
/// evidence and retryability, the reason naming the batch and its records, e.g. "Batch 3
/// (records 2001–3000) failed: The model exited with status 3.". The output is then discarded
/// by the caller, as for any failure. An empty payload is zero batches: success, empty output,
/// the model not called. On cancellation every batch is stopped and its files removed.
public struct LineSplitExecutor: ModelExecutor {
    public let inner: any ModelExecutor
    public let maxBatchBytes: Int
    public let maxBatchRecords: Int
    /// Batches run at once (the endpoint's capacity, `EndpointConfig.concurrency`).
    public let concurrency: Int
    /// Where batch files go; nil: the folder of the invocation's output file (the daemon's
    /// `.spool/partial`), or the system's temporary folder if that cannot be found.
    public let temporaryDirectory: String?

    /// Batches cut and not yet appended to the output, at most.
    public var readAhead: Int { 2 * concurrency }

    public init(
        inner: any ModelExecutor, maxBatchBytes: Int, maxBatchRecords: Int, concurrency: Int,
        temporaryDirectory: String? = nil
    ) {
        self.inner = inner
        self.maxBatchBytes = max(1, maxBatchBytes)
        self.maxBatchRecords = max(1, maxBatchRecords)
        self.concurrency = max(1, concurrency)
        self.temporaryDirectory = temporaryDirectory
    }

    /// Wraps `inner` with the endpoint's `split_max_bytes`, `split_max_records` and capacity.
    public init(wrapping inner: any ModelExecutor, endpoint: EndpointConfig, temporaryDirectory: String? = nil) {
        self.init(
            inner: inner, maxBatchBytes: endpoint.splitMaxBytes, maxBatchRecords: endpoint.splitMaxRecords,
            concurrency: endpoint.concurrency, temporaryDirectory: temporaryDirectory
        )
    }

    public func start(context: ExecutorContext) async throws { try await inner.start(context: context) }
    public func maintain(context: ExecutorContext) async { await inner.maintain(context: context) }
    public func shutdown() async { await inner.shutdown() }
    public var instancesRunning: Int { inner.instancesRunning }

    static let stopped = Failure(.cancelled, "The invocation was stopped.")

    public func invoke(_ invocation: Invocation) async -> AttemptResult {
        if Task.isCancelled { return .failed(Self.stopped) }
        let output = Self.path(of: invocation.output)
        let directory = temporaryDirectory
            ?? output.map { ($0 as NSString).deletingLastPathComponent }
            ?? NSTemporaryDirectory()
        let prefix = "." + (output.map { ($0 as NSString).lastPathComponent } ?? invocation.request.id)
        let files = BatchFiles(directory: directory, prefix: prefix)
        files.removeLeftovers()
        defer { files.removeAll() }
        let batcher = LineBatcher(
            input: invocation.input, chunkBytes: invocation.chunkBytes, maxBytes: maxBatchBytes,
            maxRecords: maxBatchRecords, files: files
        )
        let result = await run(invocation, batcher: batcher, files: files)
        if Task.isCancelled { return .failed(Self.stopped) }
        return result
    }

    /// Cuts, runs and appends batches until the payload is used up or a batch fails.
    private func run(_ invocation: Invocation, batcher: LineBatcher, files: BatchFiles) async -> AttemptResult {
        let inner = self.inner
        return await withTaskGroup(of: (Int, AttemptResult).self) { group -> AttemptResult in
            var pending: [Int: LineBatch] = [:]  // cut and not yet appended, by number
            var finished: Set<Int> = []
            var nextToAppend = 1
            var running = 0
            var exhausted = false
            defer { group.cancelAll() }
            while true {
                while !exhausted && running < concurrency && pending.count < readAhead {
                    if Task.isCancelled { return .failed(Self.stopped) }
                    switch await BlockingIO.run({ batcher.next(cancelled: $0) }) {
                    case .failure(let failure):
                        return .failed(failure)
                    case .success(nil):
                        exhausted = true
                    case .success(let batch?):
                        pending[batch.number] = batch
                        running += 1
                        let derived = Self.invocation(for: batch, of: invocation)
                        group.addTask { (batch.number, await inner.invoke(derived)) }
                    }
                }
                guard running > 0, let (number, result) = await group.next() else { break }
                running -= 1
                if case .failed(let failure) = result {
                    if Task.isCancelled { return .failed(Self.stopped) }
                    var failure = failure
                    let batch = pending[number]!
                    failure.reason = "Batch \(batch.number) (\(batch.recordRange)) failed: \(failure.reason)"
                    return .failed(failure)
                }
                finished.insert(number)
                while finished.contains(nextToAppend), let batch = pending[nextToAppend] {
                    let destination = invocation.output
                    let appended = await BlockingIO.run { Self.append(batch, to: destination, cancelled: $0) }
                    if case .failed = appended { return appended }
                    files.remove(number: batch.number)
                    pending[batch.number] = nil
                    finished.remove(batch.number)
                    invocation.progress(batch.end)
                    nextToAppend += 1
                }
            }
            return .succeeded
        }
    }

    /// The invocation a batch runs as: the request with the batch's size, on the batch's files.
    static func invocation(for batch: LineBatch, of invocation: Invocation) -> Invocation {
        var request = invocation.request
        request.payloadBytes = batch.bytes
        return Invocation(
            request: request, inputPath: batch.inputPath, input: batch.input, output: batch.output,
            chunkBytes: invocation.chunkBytes, progress: { _ in }
        )
    }

    /// Appends a finished batch's output to the request's output.
    static func append(_ batch: LineBatch, to destination: Int32, cancelled: CancellationFlag) -> AttemptResult {
        var total = 0
        do throws(SystemError) {
            guard lseek(batch.output, 0, SEEK_SET) == 0 else { throw SystemError(call: "lseek", errno: errno) }
            var buffer: UnsafeMutableRawBufferPointer?  // only when the kernel cannot copy
            defer { buffer?.deallocate() }
            var writeback = Writeback(destination)
            while true {
                if cancelled.isCancelled { return .failed(stopped) }
                var n = 0
                if buffer == nil {
                    do {
                        n = try SystemCalls.copyRange(from: batch.output, to: destination, count: 8 << 20)
                    } catch where total == 0 && [EXDEV, EINVAL, ENOSYS, EOPNOTSUPP, EBADF].contains(error.errno) {
                        buffer = .allocate(byteCount: 1 << 20, alignment: 4096)
                    }
                }
                if let buffer {
                    n = try SystemCalls.read(batch.output, into: buffer)
                    try SystemCalls.writeAll(destination, UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                }
                if n == 0 { return .succeeded }
                writeback.wrote(n)
                total += n
            }
        } catch {
            return .failed(Failure(
                .outputWriteFailed, "The output of batch \(batch.number) (\(batch.recordRange)) could not be appended: \(error.description)."
            ))
        }
    }

    /// The path a descriptor is open on, if it is a file that still has one.
    static func path(of fd: Int32) -> String? {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)"),
            target.hasPrefix("/"), !target.hasSuffix(" (deleted)") else { return nil }
        return target
    }
}
