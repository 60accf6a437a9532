import Foundation
import SpoolCore

#if canImport(Glibc)
import Glibc
import SpoolSystem
#endif

/// The in-process models shipped with Spool.
///
/// - `echo`: the output is the payload (copied in the kernel, chunk by chunk).
/// - `sha256`: `{"sha256":"<hex>","bytes":N}`.
/// - `wc`: `{"lines":L,"words":W,"bytes":B}`, counted as `wc` does.
/// - `fail` (test helper): always fails with `ModelError`.
/// - `sleep` (test helper): sleeps for the number of seconds the payload holds as text, then
///   echoes it; used to exercise timeouts, cancellation and crash recovery.
public struct BuiltinExecutor: ModelExecutor {
    public enum Model: String, Sendable, CaseIterable {
        case echo, sha256, wc, fail, sleep
    }

    public let model: Model
    /// Payloads up to this size run on the calling task instead of a blocking-I/O thread.
    static let inlineLimit: Int64 = 256 * 1024

    /// Every builtin model writes its output itself, in order, through `write` and
    /// `copy_file_range` at the descriptor's offset.
    public var writesOutputInOrder: Bool { true }

    /// echo, sha256 and wc run a small payload in microseconds: a worker claims up to 64 small
    /// requests at once. The test helpers go one at a time.
    public var claimBatch: ClaimBatch {
        switch model {
        case .echo, .sha256, .wc: ClaimBatch(more: 63, maxBytes: Self.inlineLimit)
        case .fail, .sleep: .single
        }
    }

    public init(model: Model) {
        self.model = model
    }

    public init?(name: String) {
        guard let model = Model(rawValue: name) else { return nil }
        self.model = model
    }

    public func invoke(_ invocation: Invocation) async -> AttemptResult {
        switch model {
        case .fail:
            return .failed(Failure(
                .modelError, "The builtin fail model always fails.",
                evidence: ModelEvidence(exitStatus: 1, tail: "fail: this model fails every request\n")
            ))
        case .sleep:
            return await sleepThenEcho(invocation)
        case .echo, .sha256, .wc:
            let model = self.model
            let input = invocation.input
            let output = invocation.output
            let chunk = invocation.chunkBytes
            let progress = invocation.progress
            if invocation.request.payloadBytes <= Self.inlineLimit {
                // Small payloads are read from the page cache faster than a thread hop, into a
                // buffer no larger than they need (a fresh chunk-sized one costs an mmap).
                let buffer = min(chunk, max(4096, Int(invocation.request.payloadBytes) + 1))
                return Self.stream(model, input: input, output: output, chunkBytes: buffer, readsAhead: false, progress: progress, cancelled: CancellationFlag())
            }
            return await BlockingIO.run { flag in
                Self.stream(model, input: input, output: output, chunkBytes: chunk, readsAhead: true, progress: progress, cancelled: flag)
            }
        }
    }

    /// - Parameter readsAhead: ask the kernel for sequential read-ahead (worth a system call
    ///   only for payloads larger than the inline limit).
    private static func stream(
        _ model: Model, input: Int32, output: Int32, chunkBytes: Int, readsAhead: Bool,
        progress: @Sendable (Int64) -> Void, cancelled: CancellationFlag
    ) -> AttemptResult {
        if readsAhead { _ = posix_fadvise(input, 0, 0, POSIX_FADV_SEQUENTIAL) }
        do throws(SystemError) {
            if model == .echo, let result = try copyInKernel(input: input, output: output, chunkBytes: chunkBytes, progress: progress, cancelled: cancelled) {
                return result
            }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkBytes, alignment: 4096)
            defer { buffer.deallocate() }
            var digest = model == .sha256 ? SHA256Digest() : nil
            var counter = WordCounter()
            var writeback = Writeback(output)
            var total: Int64 = 0
            while true {
                if cancelled.isCancelled { return .failed(Failure(.cancelled, "The invocation was stopped.")) }
                let n: Int
                do { n = try SystemCalls.read(input, into: buffer) } catch {
                    return .failed(Failure(.inputUnreadable, "The payload could not be read: \(error.description)."))
                }
                if n == 0 { break }
                let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                switch model {
                case .sha256: digest!.update(chunk)
                case .wc: counter.update(chunk)
                default:
                    try SystemCalls.writeAll(output, chunk)
                    writeback.wrote(n)
                }
                total += Int64(n)
                progress(total)
            }
            switch model {
            case .sha256:
                let hex = digest.take()!.finalizeHex()
                try SystemCalls.writeAll(output, #"{"sha256":"\#(hex)","bytes":\#(total)}"# + "\n")
            case .wc:
                try SystemCalls.writeAll(output, counter.json)
            default:
                break
            }
            return .succeeded
        } catch {
            return .failed(Failure(.outputWriteFailed, "The output could not be written: \(error.description)."))
        }
    }

    /// `echo` by `copy_file_range`, at least `Writeback.step` at a time (no memory of ours is
    /// involved); nil when the kernel cannot copy between these files and the caller should fall
    /// back to read/write (nothing was written).
    private static func copyInKernel(
        input: Int32, output: Int32, chunkBytes: Int, progress: @Sendable (Int64) -> Void, cancelled: CancellationFlag
    ) throws(SystemError) -> AttemptResult? {
        var total: Int64 = 0
        var writeback = Writeback(output)
        while true {
            if cancelled.isCancelled { return .failed(Failure(.cancelled, "The invocation was stopped.")) }
            let n: Int
            do {
                n = try SystemCalls.copyRange(from: input, to: output, count: max(chunkBytes, Writeback.step))
            } catch where total == 0 && [EXDEV, EINVAL, ENOSYS, EOPNOTSUPP, EBADF].contains(error.errno) {
                return nil
            } catch where error.errno == EIO {
                return .failed(Failure(.inputUnreadable, "The payload could not be read: \(error.description)."))
            }
            if n == 0 { return .succeeded }
            writeback.wrote(n)
            total += Int64(n)
            progress(total)
        }
    }

    private func sleepThenEcho(_ invocation: Invocation) async -> AttemptResult {
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(invocation.input, $0.baseAddress, $0.count) }
        let text = String(decoding: buffer.prefix(max(0, n)), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let seconds = Double(text), seconds >= 0, seconds < 86400 else {
            return .failed(Failure(.modelError, "The builtin sleep model needs a number of seconds as its payload, got \"\(text.prefix(20))\"."))
        }
        do {
            try await Task.sleep(for: .seconds(seconds))
        } catch {
            return .failed(Failure(.cancelled, "The invocation was stopped."))
        }
        do throws(SystemError) {
            try SystemCalls.writeAll(invocation.output, text + "\n")
        } catch {
            return .failed(Failure(.outputWriteFailed, "The output could not be written: \(error.description)."))
        }
        invocation.progress(Int64(max(0, n)))
        return .succeeded
    }
}

/// Builds the executor an endpoint's configuration names.
public enum ExecutorFactory {
    /// The endpoint's executor; with `split = "line"`, wrapped in a `LineSplitExecutor` whose
    /// batch files go to `temporaryDirectory` (nil: the folder of each invocation's output).
    /// The process groups of command models and model servers are written down in
    /// `processGroups`, when given.
    /// Model logs go to `root/logs/` when `root` is given; a container's relative `workdir` is
    /// inside `root`.
    public static func make(
        for endpoint: EndpointConfig, temporaryDirectory: String? = nil, processGroups: ProcessGroupRecord? = nil,
        root: String? = nil
    ) throws -> any ModelExecutor {
        let executor = try makeUnsplit(for: endpoint, processGroups: processGroups, root: root)
        guard endpoint.split == .line else { return executor }
        return LineSplitExecutor(wrapping: executor, endpoint: endpoint, temporaryDirectory: temporaryDirectory)
    }

    private static func makeUnsplit(
        for endpoint: EndpointConfig, processGroups: ProcessGroupRecord?, root: String?
    ) throws -> any ModelExecutor {
        let logDirectory = root.map { "\($0)/\(ModelLog.directory)" }
        switch endpoint.model {
        case .builtin(let name):
            guard let executor = BuiltinExecutor(name: name) else {
                throw ExecutorError.unsupported("unknown builtin model \"\(name)\"")
            }
            return executor
        case .command(let argv):
            guard let program = argv.first, !program.isEmpty else {
                throw ExecutorError.unsupported("endpoint \(endpoint.name): the model command is empty")
            }
            let log = logDirectory.map { ModelLog(path: ModelLog.path(directory: $0, endpoint: endpoint.name, instance: nil)) }
            return CommandExecutor(argv: argv, processGroups: processGroups, log: log)
        case .container(let spec):
            guard let program = spec.serve.first, !program.isEmpty else {
                throw ExecutorError.unsupported("endpoint \(endpoint.name): the container's serve command is empty")
            }
            var workdir = spec.workdir
            if let dir = workdir, !dir.hasPrefix("/"), let root { workdir = "\(root)/\(dir)" }
            if let dir = workdir {
                var isFolder: ObjCBool = false
                guard FileManager.default.fileExists(atPath: dir, isDirectory: &isFolder), isFolder.boolValue else {
                    throw ExecutorError.unsupported("endpoint \(endpoint.name): model.container.workdir \"\(dir)\" is not a folder")
                }
            }
            return ContainerExecutor(
                spec: spec, endpoint: endpoint, workdir: workdir, logDirectory: logDirectory, processGroups: processGroups)
        case .url(let url):
            return URLExecutor(url: url, connections: endpoint.concurrency)
        }
    }
}

/// Errors building executors.
public enum ExecutorError: Error, CustomStringConvertible {
    case unsupported(String)

    public var description: String {
        switch self {
        case .unsupported(let reason): reason
        }
    }
}
