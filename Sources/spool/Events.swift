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
        if let since, Age.cutoff(since, now: Date()) == nil {
            throw ValidationError("--since takes an ISO 8601 time (2026-11-25T10:00:00Z) or an age (30s, 10m, 2h, 7d), not \"\(since)\"")
        }
    }

    func run() async throws {
        let path = options.layout.eventsPath
        let cutoff = since.flatMap { Age.cutoff($0, now: Date()) }
        let reader = LineFollower(path: path)
        while true {
            for line in reader.readAvailable() where EventFilter.isAtOrAfter(line, cutoff) {
                FileHandle.standardOutput.write(line + Data("\n".utf8))
            }
            if !follow { return }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
