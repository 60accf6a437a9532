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

    @OptionGroup var since: SinceOption

    func run() async throws {
        let path = options.layout.eventsPath
        let cutoff = since.cutoff
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
