import Foundation
import Glibc
import Synchronization
import SpoolTestSupport
import Testing

/// Every integration suite is nested in this one, so the whole target runs one test at a time
/// (the machine has two cores and each test runs a real daemon).
@Suite(.serialized) struct IntegrationTests {}

/// A harness failure: a bounded wait that ran out, a system call that failed.
struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The `spool` binary under test: `$SPOOL_BIN`, else `<package root>/.build/debug/spool`.
enum SpoolBinary {
    static let path: String = {
        if let path = ProcessInfo.processInfo.environment["SPOOL_BIN"], !path.isEmpty { return path }
        let packageRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return packageRoot.appendingPathComponent(".build/debug/spool").path
    }()

    private static let copy = Mutex<String?>(nil)

    /// A copy of the binary that every user may run (the build folder may be private), made
    /// once per test process.
    static func shared() throws -> String {
        try copy.withLock { made in
            if let made { return made }
            let folder = "/tmp/spool-it-bin-\(getpid())"
            try? FileManager.default.removeItem(atPath: folder)
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            guard chmod(folder, 0o755) == 0 else { throw HarnessError("chmod \(folder): errno \(errno)") }
            try FileManager.default.copyItem(atPath: path, toPath: folder + "/spool")
            guard chmod(folder + "/spool", 0o755) == 0 else { throw HarnessError("chmod: errno \(errno)") }
            made = folder + "/spool"
            return folder + "/spool"
        }
    }
}

/// A `spool` child process. Its stdout and stderr go to files; a process still running when
/// this object goes away is killed (SIGKILL) and reaped, so no test leaves a daemon behind.
final class Child: @unchecked Sendable {
    let name: String
    let stdoutPath: String
    let stderrPath: String
    private let process = Process()

    /// - Parameters:
    ///   - user: run as this uid and gid (through `setpriv`), not as the test's user.
    ///   - launcher: a command that runs the binary (`prlimit --nofile=…`), with its arguments.
    ///   - environment: variables to set for it, beside the test's own.
    init(arguments: [String], stdin: String?, logPrefix: String, user: UInt32? = nil, launcher: [String] = [], environment: [String: String] = [:]) throws {
        name = "spool " + arguments.joined(separator: " ")
        stdoutPath = logPrefix + ".stdout"
        stderrPath = logPrefix + ".stderr"
        for path in [stdoutPath, stderrPath] {
            guard FileManager.default.createFile(atPath: path, contents: nil) else { throw HarnessError("cannot create \(path)") }
        }
        if let user {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=\(user)", "--regid=\(user)", "--clear-groups", "--", try SpoolBinary.shared()] + arguments
        } else if let command = launcher.first {
            process.executableURL = URL(fileURLWithPath: command)
            process.arguments = launcher.dropFirst() + [SpoolBinary.path] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: SpoolBinary.path)
            process.arguments = arguments
        }
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardInput = stdin.flatMap(FileHandle.init(forReadingAtPath:)) ?? FileHandle.nullDevice
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        try process.run()
        Self.started.withLock { $0.insert(process.processIdentifier) }
        Self.killLeftoversAtExit
    }

    deinit {
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        Self.started.withLock { _ = $0.remove(process.processIdentifier) }
    }

    /// The children not yet reaped. A failed expectation keeps the values it names alive, a
    /// `Child` among them, past its test; whatever is still here when the test process exits
    /// is killed then, so no daemon outlives the run.
    private static let started = Mutex<Set<pid_t>>([])
    private static let killLeftoversAtExit: Void = {
        atexit {
            Child.started.withLock { pids in pids.forEach { _ = Glibc.kill($0, SIGKILL) } }
        }
    }()

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    func send(_ signal: Int32) { if process.isRunning { Glibc.kill(process.processIdentifier, signal) } }

    /// Waits (bounded) for the process to end; returns its exit status (128+N for signal N).
    @discardableResult
    func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            guard ContinuousClock.now < deadline else {
                throw HarnessError("\(name) did not exit within \(timeout)\n\(logTail())")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        let status = process.terminationStatus
        return process.terminationReason == .uncaughtSignal ? 128 + status : status
    }

    var stdout: Data { FileManager.default.contents(atPath: stdoutPath) ?? Data() }
    var stderr: String { String(decoding: FileManager.default.contents(atPath: stderrPath) ?? Data(), as: UTF8.self) }

    /// The end of stderr, without the one-line-per-success noise.
    func logTail(lines: Int = 40) -> String {
        let interesting = stderr.split(separator: "\n").filter { !$0.contains("request succeeded") }
        return "--- \(name) (pid \(pid)) stderr, last \(lines) lines other than successes ---\n"
            + interesting.suffix(lines).joined(separator: "\n")
    }
}

/// What a finished CLI command printed.
struct CommandResult {
    var status: Int32
    var stdout: Data
    var stderr: String
    var text: String { String(decoding: stdout, as: UTF8.self) }
}

/// A fresh spool root in its own temporary folder (`<tmp>/spool`; logs beside it in `<tmp>`),
/// removed, with every process started on it killed, when the test ends.
final class SpoolRoot: @unchecked Sendable {
    let base: String
    let path: String
    private var children: [Child] = []

    init(config: String? = nil) throws {
        base = try makeTemporaryDirectory(prefix: "spool-it")
        path = base + "/spool"
        try Files.makeDirectories(path + "/incoming")
        if let config { try Files.write(path + "/spool.toml", Array(config.utf8)) }
    }

    deinit {
        children.forEach { $0.send(SIGKILL) }
        children.removeAll()  // reaps them (Child.deinit)
        try? FileManager.default.removeItem(atPath: base)
    }

    var incoming: String { path + "/incoming" }
    var outputs: String { path + "/outputs" }
    var errors: String { path + "/errors" }
    var eventsPath: String { path + "/events.jsonl" }

    /// Starts `spool <subcommand> --root <root> <arguments>` without waiting for it.
    func spawn(
        _ subcommand: String, _ arguments: [String] = [], stdin: String? = nil, withRoot: Bool = true, environment: [String: String] = [:]
    ) throws -> Child {
        let child = try Child(
            arguments: [subcommand] + (withRoot ? ["--root", path] : []) + arguments, stdin: stdin,
            logPrefix: "\(base)/\(subcommand)-\(children.count + 1)", environment: environment)
        children.append(child)
        return child
    }

    /// Starts the daemon.
    func serve(_ arguments: [String] = [], environment: [String: String] = [:]) throws -> Child {
        try spawn("serve", arguments, environment: environment)
    }

    /// Starts the daemon through `launcher` (a command and its arguments, the binary after them).
    func serve(launcher: [String], _ arguments: [String] = []) throws -> Child {
        let child = try Child(
            arguments: ["serve", "--root", path] + arguments, stdin: nil,
            logPrefix: "\(base)/serve-launched-\(children.count + 1)", launcher: launcher)
        children.append(child)
        return child
    }

    /// Starts the daemon as user `uid` (group `uid` too), after giving that user the root, but
    /// for the paths in `keeping` and what is below them.
    func serve(asUser uid: UInt32, keeping: [String] = [], _ arguments: [String] = []) throws -> Child {
        guard chown(base, uid, uid) == 0 else { throw HarnessError("chown \(base): errno \(errno)") }
        let kept = { (file: String) in keeping.contains { file == $0 || file.hasPrefix($0 + "/") } }
        for file in [path] + Files.allPaths(under: path) where !kept(file) && lchown(file, uid, uid) != 0 {
            throw HarnessError("chown \(file): errno \(errno)")
        }
        let child = try Child(
            arguments: ["serve", "--root", path] + arguments, stdin: nil,
            logPrefix: "\(base)/serve-as-\(uid)-\(children.count + 1)", user: uid)
        children.append(child)
        return child
    }

    /// Runs a CLI command to completion (bounded); `stdin` is written to a file and fed from it.
    func run(
        _ subcommand: String, _ arguments: [String] = [], stdin: Data? = nil, withRoot: Bool = true, timeout: Duration = .seconds(60),
        environment: [String: String] = [:]
    ) async throws -> CommandResult {
        var input: String?
        if let stdin {
            input = "\(base)/stdin-\(children.count + 1)"
            try Files.write(input!, Array(stdin))
        }
        let child = try spawn(subcommand, arguments, stdin: input, withRoot: withRoot, environment: environment)
        let status = try await child.waitForExit(timeout: timeout)
        return CommandResult(status: status, stdout: child.stdout, stderr: child.stderr)
    }

    /// The stderr of every process started on this root (for failure messages).
    var diagnostics: String {
        children.isEmpty ? "(no spool process was started)" : children.map { $0.logTail() }.joined(separator: "\n")
    }

    /// Polls `condition` every `every` until it holds; throws, with the daemon logs, at `timeout`.
    func waitUntil(
        _ what: @autoclosure () -> String, timeout: Duration = .seconds(30), every: Duration = .milliseconds(20),
        _ condition: () async throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await !condition() {
            guard ContinuousClock.now < deadline else {
                throw HarnessError("timed out after \(timeout) waiting for \(what())\n\(diagnostics)")
            }
            try await Task.sleep(for: every)
        }
    }

    /// Polls a growing count until it reaches `target`; throws when it stops moving for
    /// `stall` or when `timeout` passes. Returns the final count.
    @discardableResult
    func waitForCount(
        _ what: String, toReach target: Int, timeout: Duration, stall: Duration = .seconds(60),
        every: Duration = .milliseconds(250), _ count: () throws -> Int
    ) async throws -> Int {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var last = -1
        var lastChange = clock.now
        while true {
            let now = try count()
            if now >= target { return now }
            if now != last { last = now; lastChange = clock.now }
            if clock.now >= deadline || clock.now - lastChange >= stall {
                throw HarnessError("\(what): \(now) of \(target) after waiting (limit \(timeout), stalled limit \(stall))\n\(diagnostics)")
            }
            try await Task.sleep(for: every)
        }
    }
}
