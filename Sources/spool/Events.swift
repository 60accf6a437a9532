import ArgumentParser
import Foundation
import SpoolCore

#if canImport(Glibc)
import Glibc
import SpoolSystem
#endif

struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the notifications in events.jsonl; --follow waits for new ones, as tail -F does."
    )

    @OptionGroup var options: RootOptions

    @Flag(name: .shortAndLong, help: "Keep printing new events as they are written (survives rotation of events.jsonl).")
    var follow = false

    @Option(help: ArgumentHelp("Only events at or after this time: an ISO 8601 time, or an age like 10m, 2h, 7d.", valueName: "time"))
    var since: String?

    func validate() throws {
        if let since, Self.parseSince(since, now: Date()) == nil {
            throw ValidationError("--since takes an ISO 8601 time (2026-11-25T10:00:00Z) or an age (30s, 10m, 2h, 7d), not \"\(since)\"")
        }
    }

    static func parseSince(_ text: String, now: Date) -> String? {
        if let age = Age.parse(text) { return Timestamp.string(now.addingTimeInterval(-age)) }
        let formatter = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime]] {
            formatter.formatOptions = options
            if let date = formatter.date(from: text) { return Timestamp.string(date) }
        }
        return nil
    }

    func run() async throws {
        let path = options.layout.eventsPath
        let cutoff = since.flatMap { Self.parseSince($0, now: Date()) }
        var reader = LineFollower(path: path)
        while true {
            for line in reader.readAvailable() where Self.keep(line, since: cutoff) {
                FileHandle.standardOutput.write(line + Data("\n".utf8))
            }
            if !follow { return }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Event times are ISO 8601 in UTC with milliseconds, so they compare as strings.
    static func keep(_ line: Data, since cutoff: String?) -> Bool {
        guard let cutoff else { return true }
        guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any],
              let time = object["eventTime"] as? String else { return false }
        return time >= cutoff
    }
}

/// Reads complete lines appended to a file, following it across rotation (a new file under the
/// same name) and truncation, like `tail -F`.
struct LineFollower {
    let path: String
    private var fd: Int32 = -1
    private var inode: ino_t = 0
    private var partial = Data()

    init(path: String) {
        self.path = path
    }

    mutating func readAvailable() -> [Data] {
        var lines: [Data] = []
        if fd < 0 { reopen() }
        guard fd >= 0 else { return [] }
        drain(into: &lines)
        // Rotated (another file now has the name) or truncated: finish the old one, start anew.
        var named = stat()
        var current = stat()
        let rotated = stat(path, &named) == 0 && named.st_ino != inode
        if fstat(fd, &current) == 0, current.st_size < lseek(fd, 0, SEEK_CUR) {
            lseek(fd, 0, SEEK_SET)
            partial = Data()
            drain(into: &lines)
        }
        if rotated {
            close(fd)
            fd = -1
            partial = Data()
            reopen()
            if fd >= 0 { drain(into: &lines) }
        }
        return lines
    }

    private mutating func reopen() {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        var info = stat()
        fstat(fd, &info)
        inode = info.st_ino
    }

    private mutating func drain(into lines: inout [Data]) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            guard let n = try? buffer.withUnsafeMutableBytes({ bytes throws(SystemError) in try SystemCalls.read(fd, into: bytes) }),
                  n > 0 else { break }
            partial.append(contentsOf: buffer[0..<n])
        }
        // One pass over the buffer, then one cut: copying the rest after every line would make a
        // large file's first read quadratic.
        var start = partial.startIndex
        while let newline = partial[start...].firstIndex(of: 0x0A) {
            let line = partial[start..<newline]
            if !line.isEmpty { lines.append(Data(line)) }
            start = newline + 1
        }
        if start > partial.startIndex { partial = Data(partial[start...]) }
    }
}
