import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SpoolCore
import SpoolSystem

/// Speaks the SageMaker inference container contract to one model server: `GET /ping` and
/// `POST /invocations`, streaming both bodies.
///
/// - The request body is the payload, read in `chunkBytes` pieces with back-pressure and sent with
///   `Content-Length` (the size is known), `Content-Type` (`application/octet-stream` when the
///   request has none), and `Accept`, `X-Amzn-SageMaker-Custom-Attributes` and
///   `X-Amzn-SageMaker-Inference-Id` when given.
/// - A 2xx response body is written to the output as it arrives, chunk by chunk.
/// - Another status is a `ModelError` with the status and the last 4 KiB of the body (at most
///   `drainLimit` bytes of it are read): retryable for 5xx, not for 4xx and others.
/// - A failed connection (refused, reset, closed mid-response) or a deadline is a retryable
///   `ModelError`; `Outcome.connectionFailed` tells the caller to check whether the server died.
struct ModelServerClient: Sendable {
    let http: HTTPClient

    /// What one `POST /invocations` came to.
    struct Outcome: Sendable {
        var result: AttemptResult
        /// No HTTP status was received: the connection failed or was cut.
        var connectionFailed = false
    }

    /// The response body read at most, after a non-2xx status, to keep its tail.
    static let drainLimit = 1 << 20

    /// A client for model servers: no redirects, no decompression, HTTP/1.1, up to
    /// `connectionsPerServer` connections to each server.
    static func makeHTTPClient(connectionsPerServer: Int) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.httpVersion = .http1Only
        configuration.timeout.connect = .seconds(10)
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(8, connectionsPerServer)
        )
        // A refused connection fails at once (the server is down, which the caller handles)
        // instead of being retried until the deadline.
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Whether `GET base/ping` answers 200 within `timeout`.
    func ping(_ base: String, timeout: Duration) async -> Bool {
        let request = HTTPClientRequest(url: base + "/ping")
        do {
            let response = try await http.execute(request, timeout: .nanoseconds(Int64(timeout.nanoseconds)))
            _ = try await response.body.collect(upTo: 64 * 1024)
            return response.status == .ok
        } catch {
            return false
        }
    }

    /// Sends the invocation to `base/invocations`; honours task cancellation (the connection is
    /// closed at once).
    func invoke(_ invocation: Invocation, base: String) async -> Outcome {
        let request = invocation.request
        var stat = stat()
        guard fstat(invocation.input, &stat) == 0 else {
            return Outcome(result: .failed(Failure(.inputUnreadable, "The payload could not be read: \(String(cString: strerror(errno))).")))
        }
        var headers: [(String, String)] = [("Content-Type", request.contentType ?? "application/octet-stream")]
        if let accept = request.accept { headers.append(("Accept", accept)) }
        if let attributes = request.customAttributes { headers.append(("X-Amzn-SageMaker-Custom-Attributes", attributes)) }
        headers.append(("X-Amzn-SageMaker-Inference-Id", request.id))
        if let bad = headers.first(where: { $0.1.unicodeScalars.contains { $0.value < 0x20 && $0 != "\t" || $0.value == 0x7F } }) {
            return Outcome(result: .failed(Failure(.invalidRequest, "The \(bad.0) of the request holds a control character.")))
        }

        var post = HTTPClientRequest(url: base + "/invocations")
        post.method = .POST
        for (name, value) in headers { post.headers.add(name: name, value: value) }
        let body = PayloadBodyStream(
            descriptor: invocation.input, length: Int64(stat.st_size), chunkBytes: invocation.chunkBytes, progress: invocation.progress
        )
        post.body = .stream(body, length: .known(Int64(stat.st_size)))
        // The daemon enforces the request's timeout by cancelling; this deadline is a backstop.
        let deadline = NIODeadline.now() + .seconds(Int64(request.timeoutSeconds) + 60)

        do {
            let response = try await http.execute(post, deadline: deadline)
            let status = Int(response.status.code)
            if (200..<300).contains(status) {
                var writeback = Writeback(invocation.output)
                for try await chunk in response.body {
                    try Self.write(chunk, to: invocation.output)
                    writeback.wrote(chunk.readableBytes)
                }
                return Outcome(result: .succeeded)
            }
            var tail = StderrTail()
            do {
                for try await chunk in response.body {
                    chunk.withUnsafeReadableBytes { tail.append($0) }
                    if tail.totalBytes >= Self.drainLimit { break }
                }
            } catch {
                // The status is the evidence; a body cut short only shortens the tail.
            }
            let reason = "The model server answered \(status)\(response.status.reasonPhrase.isEmpty ? "" : " (\(response.status.reasonPhrase))")."
            return Outcome(result: .failed(Failure(
                .modelError, reason, evidence: ModelEvidence(httpStatus: status, tail: tail.text), retryable: status >= 500
            )))
        } catch {
            return Outcome(result: .failed(Self.failure(for: error)), connectionFailed: !(error is OutputError) && !(error is PayloadBodyStream.ReadError))
        }
    }

    /// A failed write of the output file.
    struct OutputError: Error {
        var error: SystemError
    }

    /// Writes all of `chunk` to `descriptor`.
    static func write(_ chunk: ByteBuffer, to descriptor: Int32) throws(OutputError) {
        var failure: SystemError?
        chunk.withUnsafeReadableBytes { bytes in
            do throws(SystemError) { try SystemCalls.writeAll(descriptor, bytes) } catch { failure = error }
        }
        if let failure { throw OutputError(error: failure) }
    }

    /// The failure an error thrown while talking to the server stands for.
    static func failure(for error: any Error) -> Failure {
        if Task.isCancelled || error is CancellationError { return CommandExecutor.stopped }
        if let error = error as? OutputError {
            return Failure(.outputWriteFailed, "The output could not be written: \(error.error.description).")
        }
        if let error = error as? PayloadBodyStream.ReadError {
            return Failure(.inputUnreadable, "The payload could not be read: \(error.error.description).")
        }
        if let error = error as? HTTPClientError {
            switch error {
            case .cancelled: return CommandExecutor.stopped
            case .deadlineExceeded, .readTimeout:
                return Failure(.modelError, "The model server did not answer in time.", retryable: true)
            case .remoteConnectionClosed:
                return Failure(.modelError, "The model server closed the connection before answering.", retryable: true)
            default: break
            }
        }
        return Failure(.modelError, "The model server could not be reached: \(error).", retryable: true)
    }
}

extension Duration {
    /// The duration in whole nanoseconds.
    var nanoseconds: Int64 {
        let parts = components
        return parts.seconds * 1_000_000_000 + parts.attoseconds / 1_000_000_000
    }
}
