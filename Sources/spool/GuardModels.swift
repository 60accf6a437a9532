import ArgumentParser
import SpoolDaemon
import SpoolExecutors

/// The watcher `serve` and `drain` start beside themselves (see `ModelGuard`); not for users.
struct GuardModels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guard-models",
        abstract: "Internal: kill the models recorded in FOLDER once standard input closes.",
        shouldDisplay: false
    )

    @Argument var folder: String

    func run() throws {
        ModelGuard.watch(folder)
    }

    /// Starts the guard for `daemon`'s models. A guard that cannot start is logged, not fatal:
    /// the next start still kills what a dead daemon left running.
    static func start(for daemon: SpoolDaemon) -> ModelGuard? {
        do {
            return try ModelGuard.start(command: ["/proc/self/exe", "guard-models", daemon.engine.processGroupsDirectory])
        } catch {
            daemon.engine.logger.warning("cannot start the model guard (models would outlive a kill -9 until the next start): \(error)")
            return nil
        }
    }
}
