import Foundation

/// One attempt to run a request through a model.
public struct Invocation: Sendable {
    public var request: InferenceRequest
    /// Absolute path of the claimed payload (read-only for the model).
    public var inputPath: String
    /// An open, readable descriptor on the payload, positioned at 0. Owned by the caller.
    public var input: Int32
    /// An open, writable descriptor on the output's temporary file. Owned by the caller.
    public var output: Int32
    public var chunkBytes: Int
    /// Reports the payload bytes consumed so far; cheap to call once per chunk.
    public var progress: @Sendable (Int64) -> Void

    public init(
        request: InferenceRequest, inputPath: String, input: Int32, output: Int32, chunkBytes: Int,
        progress: @escaping @Sendable (Int64) -> Void
    ) {
        self.request = request
        self.inputPath = inputPath
        self.input = input
        self.output = output
        self.chunkBytes = chunkBytes
        self.progress = progress
    }
}

/// A model: streams a payload from `Invocation.input` to `Invocation.output` in bounded memory.
///
/// A failure is returned as data (`AttemptResult.failed`), not thrown. Executors honour task
/// cancellation promptly (the caller cancels on timeout and on `spool cancel`), stopping any
/// process or connection they started.
public protocol ModelExecutor: Sendable {
    func invoke(_ invocation: Invocation) async -> AttemptResult

    /// Starts what the executor manages (the model server instances `min` asks for) before the
    /// first invocation. Builtin and command executors have nothing to start.
    func start(context: ExecutorContext) async throws

    /// Keeps what the executor manages in shape (the container scaler's rounds: instances
    /// started on backlog, stopped when idle, health-checked) until the task is cancelled; the
    /// daemon runs it as a service (`ExecutorService`). Default: nothing to do, returns at once.
    func maintain(context: ExecutorContext) async

    /// Stops every process the executor started (SIGTERM, then SIGKILL after a grace period).
    func shutdown() async

    /// Model instances running now (for metrics; 0 for executors without instances).
    var instancesRunning: Int { get }

    /// How many small requests a worker may claim at once, to run back to back (see
    /// `Ledger.claimNext`): worth it only for models that finish a small payload in far less time
    /// than a ledger write takes. Default: one at a time.
    var claimBatch: ClaimBatch { get }

    /// Whether every output is written only by this process, through the descriptor it is
    /// given, from its start and in order (never by a child, which might reopen it or seek):
    /// its length is then where the descriptor's offset ends. The worker then reuses a recycled
    /// file without emptying it first and cuts it to that length after the attempt — emptying
    /// frees the file's blocks, which on a filesystem mounted with `discard` waits for the disk,
    /// and the output allocates them again. Default: false (the file is emptied first).
    var writesOutputInOrder: Bool { get }
}

extension ModelExecutor {
    public func start(context: ExecutorContext) async throws {}
    public func maintain(context: ExecutorContext) async {}
    public func shutdown() async {}
    public var instancesRunning: Int { 0 }
    public var claimBatch: ClaimBatch { .single }
    public var writesOutputInOrder: Bool { false }
}

/// What an executor may ask of the daemon that runs it.
public struct ExecutorContext: Sendable {
    public var endpoint: EndpointConfig
    /// Requests of the endpoint waiting in the queue (for scaling out on backlog).
    public var backlog: @Sendable () async -> Int

    public init(endpoint: EndpointConfig, backlog: @escaping @Sendable () async -> Int) {
        self.endpoint = endpoint
        self.backlog = backlog
    }
}
