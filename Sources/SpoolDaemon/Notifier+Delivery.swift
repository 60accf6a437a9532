import AsyncHTTPClient
import Foundation
import SpoolCore
import Subprocess

#if canImport(Glibc)
import Glibc
import SpoolSystem
#endif

/// The two ways a notification leaves Spool. Each returns nil when delivered, or the reason it
/// was not (one phrase, for the log).
extension Notifier {
    /// Most bytes of a hook's stderr kept for the log.
    static let stderrTailBytes = 4096

    /// Runs `argv` (no shell) with the event JSON on stdin and `SPOOL_INFERENCE_ID`,
    /// `SPOOL_ENDPOINT` in its environment; stdout is discarded. Exit 0 delivers. A hook
    /// running past `Options.hookTimeout` gets SIGTERM on its process group, SIGKILL 2 s later.
    ///
    /// Stdin and stderr are unlinked temporary files, not pipes: a hook that never reads its
    /// input or closes it early cannot stall or signal the daemon.
    func runHook(_ argv: [String], job: Job) async -> String? {
        guard let program = argv.first, !program.isEmpty else { return "the hook command is empty" }
        let directory = layout.path(SpoolLayout.partialDirectory)
        guard let input = Self.unlinkedFile(in: directory, contents: job.body) else {
            return "the event could not be staged for the hook: \(String(cString: strerror(errno)))"
        }
        guard let errors = Self.unlinkedFile(in: directory, contents: Data()) else {
            close(input)
            return "the hook's stderr could not be set up: \(String(cString: strerror(errno)))"
        }
        defer { close(errors) }
        let errorsForChild = dup(errors)
        guard errorsForChild >= 0 else {
            close(input)
            return "the hook's stderr could not be set up: \(String(cString: strerror(errno)))"
        }

        var platform = PlatformOptions()
        platform.processGroupID = 0
        platform.teardownSequence = [.send(signal: .terminate, toProcessGroup: true, allowedDurationToNextStep: .seconds(2))]
        let configuration = Configuration(
            executable: program.contains("/") ? .path(.init(program)) : .name(program),
            arguments: Arguments(executablePathOverride: program, remainingValues: Array(argv.dropFirst())),
            environment: .inherit.updating(["SPOOL_INFERENCE_ID": job.id, "SPOOL_ENDPOINT": job.endpoint]),
            platformOptions: platform
        )
        let timeout = options.hookTimeout
        // nil: the time ran out first (or the notifier is stopping).
        let outcome: Result<TerminationStatus, any Error>? = await withTaskGroup(of: Result<TerminationStatus, any Error>?.self) { group in
            group.addTask {
                do {
                    let result = try await Subprocess.run(
                        configuration,
                        input: .fileDescriptor(.init(rawValue: input), closeAfterSpawningProcess: true),
                        output: .discarded,
                        error: .fileDescriptor(.init(rawValue: errorsForChild), closeAfterSpawningProcess: true)
                    )
                    return .success(result.terminationStatus)
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        let tail = Self.tail(of: errors)
        let evidence = tail.isEmpty ? "" : "; stderr: \(tail)"
        switch outcome {
        case nil:
            return Task.isCancelled
                ? "the hook \(program) was stopped at shutdown"
                : "the hook \(program) ran longer than \(timeout) and was killed\(evidence)"
        case .failure(let error):
            return "the hook \(program) could not be run: \(error)"
        case .success(let status) where status.isSuccess:
            return nil
        case .success(.exited(let code)):
            return "the hook \(program) exited with status \(code)\(evidence)"
        case .success(let status):
            return "the hook \(program) ended with \(status)\(evidence)"
        }
    }

    /// POSTs the event JSON to `url` (`Content-Type: application/json`); a 2xx answer delivers.
    /// Anything else is tried again after each of `Options.webhookRetryDelays`.
    func postWebhook(_ url: String, job: Job) async -> String? {
        var lastError = "not attempted"
        let delays = options.webhookRetryDelays
        for attempt in 0...delays.count {
            if attempt > 0 {
                do {
                    try await Task.sleep(for: delays[attempt - 1])
                } catch {
                    return "the webhook \(url) was not retried at shutdown after: \(lastError)"
                }
            }
            guard let error = await postOnce(url, body: job.body) else { return nil }
            lastError = error
            logger.debug("webhook attempt failed", metadata: [
                "spool.request.id": "\(job.id)", "spool.attempt": "\(attempt + 1)", "spool.error": "\(error)",
            ])
        }
        return "the webhook \(url) failed \(delays.count + 1) times; last: \(lastError)"
    }

    /// One POST, bounded by `Options.webhookTimeout`; nil when the answer is 2xx.
    private func postOnce(_ url: String, body: Data) async -> String? {
        let timeout = options.webhookTimeout
        let answer: String?? = await withTaskGroup(of: String??.self) { group in
            group.addTask {
                var request = HTTPClientRequest(url: url)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.headers.add(name: "User-Agent", value: "spool")
                request.body = .bytes([UInt8](body))
                do {
                    // The deadline makes the client give up, and report why (a refused
                    // connection), instead of retrying to connect; the race below bounds the rest.
                    let nanoseconds = UInt64(timeout.components.seconds) * 1_000_000_000
                        + UInt64(timeout.components.attoseconds / 1_000_000_000)
                    let response = try await HTTPClient.shared.execute(
                        request, deadline: .uptimeNanoseconds(DispatchTime.now().uptimeNanoseconds + nanoseconds))
                    var read = 0
                    for try await chunk in response.body {
                        read += chunk.readableBytes
                        if read > 65_536 { break }
                    }
                    return (200..<300).contains(response.status.code) ? .some(nil) : "HTTP \(response.status.code)"
                } catch {
                    return "\(error)"
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout + .seconds(1))  // a backstop: the deadline should end it first
                return .none
            }
            let first = await group.next() ?? .none
            group.cancelAll()
            return first
        }
        switch answer {
        case .none: return "no answer within \(timeout)"
        case .some(let error): return error
        }
    }

    /// A temporary file holding `contents`, already unlinked, positioned at its start; or nil.
    static func unlinkedFile(in directory: String, contents: Data) -> Int32? {
        var template = Array("\(directory)/.notify-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { return nil }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        let written = (try? SystemCalls.writeAll(fd, contents)) != nil
        guard written, lseek(fd, 0, SEEK_SET) == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// The last `stderrTailBytes` of the file `fd`, as text on one line.
    static func tail(of fd: Int32) -> String {
        let size = lseek(fd, 0, SEEK_END)
        guard size > 0 else { return "" }
        let start = max(0, size - off_t(stderrTailBytes))
        var bytes = [UInt8](repeating: 0, count: Int(size - start))
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, start) }
        guard n > 0 else { return "" }
        return String(decoding: bytes[..<n], as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
            .replacingOccurrences(of: "\n", with: " | ")
    }
}
