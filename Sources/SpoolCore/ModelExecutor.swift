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
}
