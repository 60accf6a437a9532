import ArgumentParser
import Foundation
import SpoolCore
import SpoolStore

#if canImport(Glibc)
import Glibc
import SpoolSystem
#endif

struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Print the notifications in events.jsonl; --follow waits for new ones, as tail -F does."
    )

    @OptionGroup var options: RootOptions

    @Flag(name: .shortAndLong, help: "Keep printing new events as they are written (survives rotation of events.jsonl).")
    var follow = false

    @OptionGroup var since: SinceOption

    func run() async throws {
        for await line in EventLog.lines(at: options.layout.eventsPath, since: since.cutoff, follow: follow) {
            FileHandle.standardOutput.write(line + Data("\n".utf8))
        }
    }
}
