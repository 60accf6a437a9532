import Foundation

/// How a program run to its end ended, and what it printed.
public struct ProgramOutput: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// Runs `body` on a thread of its own and returns what it returns: for test work that blocks
/// or takes the processor for long (megabytes generated, `/proc` scanned in a loop, a large tree
/// removed). The tests' tasks share as many threads as the machine has cores; such work on one
/// of them stalls every other test's tasks, and unrelated tests' bounded waits run out.
public func onThreadOfItsOwn<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: body()) }
    }
}

/// `onThreadOfItsOwn` for work that throws.
public func onThreadOfItsOwn<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await onThreadOfItsOwn { Result { try body() } }.get()
}

/// Runs `argv` (looked up in `PATH`) to its end on a thread of its own and returns what it
/// printed (a boto3 script takes seconds: see `onThreadOfItsOwn`).
/// - Parameter mergingStderr: standard error into `stdout` (in order), `stderr` then empty.
public func runProgram(
    _ argv: [String], environment: [String: String]? = nil, directory: String? = nil, mergingStderr: Bool = false
) async -> ProgramOutput {
    await onThreadOfItsOwn { runProgramBlocking(argv, environment: environment, directory: directory, mergingStderr: mergingStderr) }
}

/// `runProgram` on the calling thread: for the one-time probes of what is installed.
public func runProgramBlocking(
    _ argv: [String], environment: [String: String]? = nil, directory: String? = nil, mergingStderr: Bool = false
) -> ProgramOutput {
    let folder: String
    do {
        folder = try makeTemporaryDirectory(prefix: "spool-program")
    } catch {
        return ProgramOutput(status: 127, stdout: "", stderr: "no temporary folder: \(error)")
    }
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let out = folder + "/stdout", err = folder + "/stderr"
    FileManager.default.createFile(atPath: out, contents: nil)
    FileManager.default.createFile(atPath: err, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = argv
    if let environment { process.environment = environment }
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    process.standardInput = FileHandle.nullDevice
    // Files, not pipes: a child that fills one pipe while we read the other never blocks.
    let stdout = FileHandle(forWritingAtPath: out)
    process.standardOutput = stdout
    process.standardError = mergingStderr ? stdout : FileHandle(forWritingAtPath: err)
    do {
        try process.run()
    } catch {
        return ProgramOutput(status: 127, stdout: "", stderr: "cannot start \(argv.first ?? ""): \(error)")
    }
    process.waitUntilExit()
    let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    return ProgramOutput(
        status: status,
        stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
}
