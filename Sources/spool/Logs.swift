import ArgumentParser
import Foundation
import SpoolCore
import SpoolExecutors

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print an endpoint's model logs (its servers' stdout and stderr, its command models' stderr), oldest first."
    )

    @OptionGroup var options: RootOptions

    @Argument(help: "The endpoint.")
    var endpoint: String

    @Flag(name: .shortAndLong, help: "Keep printing new lines as they are written (survives rotation).")
    var follow = false

    @Option(help: ArgumentHelp("Only lines at or after this time: an ISO 8601 time, or an age like 10m, 2h, 7d.", valueName: "time"))
    var since: String?

    func validate() throws {
        if let since, Events.parseSince(since, now: Date()) == nil {
            throw ValidationError("--since takes an ISO 8601 time (2026-11-25T10:00:00Z) or an age (30s, 10m, 2h, 7d), not \"\(since)\"")
        }
    }

    func run() async throws {
        let config = try options.loadConfig()
        guard config.endpoint(named: endpoint) != nil else {
            throw CLIError.usage("unknown endpoint \(endpoint) (known: \(config.endpoints.map(\.name).joined(separator: ", ")))")
        }
        let directory = options.layout.path(ModelLog.directory)
        let cutoff = since.flatMap { Events.parseSince($0, now: Date()) }
        var followers: [String: LineFollower] = [:]
        var history: [(time: Substring, line: Data)] = []
        for path in ModelLog.files(directory: directory, endpoint: endpoint) {
            // Rotated files hold the older lines; the current one is then followed.
            for rotated in (1..<ModelLog.kept).reversed() {
                var reader = LineFollower(path: "\(path).\(rotated)")
                history += reader.readAvailable().map { (Self.time(of: $0), $0) }
            }
            var current = LineFollower(path: path)
            history += current.readAvailable().map { (Self.time(of: $0), $0) }
            followers[path] = current
        }
        // Each file is in order; lines of several instances interleave by their times.
        let merged = history.enumerated().sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }
        for (_, entry) in merged where cutoff.map({ entry.time >= $0 }) ?? true {
            FileHandle.standardOutput.write(entry.line + Data("\n".utf8))
        }
        while follow {
            try await Task.sleep(for: .milliseconds(200))
            for path in ModelLog.files(directory: directory, endpoint: endpoint) where followers[path] == nil {
                followers[path] = LineFollower(path: path)
            }
            for path in followers.keys.sorted() {
                for line in followers[path]!.readAvailable() where cutoff.map({ Self.time(of: line) >= $0 }) ?? true {
                    FileHandle.standardOutput.write(line + Data("\n".utf8))
                }
            }
        }
    }

    /// The time a log line starts with (ISO 8601, UTC, milliseconds: it sorts as text).
    static func time(of line: Data) -> Substring {
        let text = String(decoding: line.prefix(24), as: UTF8.self)
        return Substring(text)
    }
}
