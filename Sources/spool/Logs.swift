import ArgumentParser
import Foundation
import SpoolCore
import SpoolExecutors

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print an endpoint's model logs (its servers' stdout and stderr, its command models' stderr), oldest first."
    )

    @OptionGroup var options: RootOptions

    @Argument(help: "The endpoint.")
    var endpoint: String

    @Flag(name: .shortAndLong, help: "Keep printing new lines as they are written (survives rotation).")
    var follow = false

    @OptionGroup var since: SinceOption

    func run() async throws {
        let config = try options.loadConfig()
        guard config.endpoint(named: endpoint) != nil else {
            throw CLIError.usage("unknown endpoint \(endpoint) (known: \(config.endpoints.map(\.name).joined(separator: ", ")))")
        }
        let reader = ModelLogReader(
            directory: options.layout.path(ModelLog.directory), endpoint: endpoint, since: since.cutoff)
        for line in reader.history() { FileHandle.standardOutput.write(line + Data("\n".utf8)) }
        while follow {
            try await Task.sleep(for: .milliseconds(200))
            for line in reader.newLines() { FileHandle.standardOutput.write(line + Data("\n".utf8)) }
        }
    }
}
