import Foundation
import SpoolSystem

/// Reads an endpoint's model logs as `spool logs` shows them: every file of the endpoint (its
/// command models' and each instance's, rotated ones first), lines of several files merged by
/// the time they start with, optionally only those at or after a cutoff; then, for `--follow`,
/// the lines written since, new files included.
public final class ModelLogReader {
    public let directory: String
    public let endpoint: String
    /// A `Timestamp` string (see `Age.cutoff`); nil keeps every line.
    public let cutoff: String?
    private var followers: [String: LineFollower] = [:]

    public init(directory: String, endpoint: String, since cutoff: String? = nil) {
        self.directory = directory
        self.endpoint = endpoint
        self.cutoff = cutoff
    }

    /// Every line already written, oldest first.
    public func history() -> [Data] {
        var lines: [(time: Substring, line: Data)] = []
        for path in ModelLog.files(directory: directory, endpoint: endpoint) {
            for rotated in (1..<ModelLog.kept).reversed() {
                lines += LineFollower(path: "\(path).\(rotated)").readAvailable().map { (Self.time(of: $0), $0) }
            }
            let current = LineFollower(path: path)
            lines += current.readAvailable().map { (Self.time(of: $0), $0) }
            followers[path] = current
        }
        // Each file is in order; lines of several files interleave by their times.
        return lines.enumerated()
            .sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }
            .map(\.element)
            .filter { keeps($0.time) }
            .map(\.line)
    }

    /// The lines written since the last call (of `history` or this), file by file.
    public func newLines() -> [Data] {
        for path in ModelLog.files(directory: directory, endpoint: endpoint) where followers[path] == nil {
            followers[path] = LineFollower(path: path)
        }
        return followers.keys.sorted().flatMap { path in
            followers[path]!.readAvailable().filter { keeps(Self.time(of: $0)) }
        }
    }

    private func keeps(_ time: Substring) -> Bool {
        cutoff.map { time >= $0 } ?? true
    }

    /// The time a log line starts with (ISO 8601, UTC, milliseconds: it sorts as text).
    static func time(of line: Data) -> Substring {
        Substring(String(decoding: line.prefix(24), as: UTF8.self))
    }
}
