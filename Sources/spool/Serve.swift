import ArgumentParser
import Foundation
import SpoolDaemon
import NIOSSL
import SpoolHTTP

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the daemon: watch the drop folders, queue, execute. SIGTERM/SIGINT stop it gracefully."
    )

    @OptionGroup var options: RootOptions

    @Option(help: ArgumentHelp("Scan every this many seconds instead of watching (for NFS and other filesystems inotify cannot see).", valueName: "seconds"))
    var poll: Double?

    @Option(help: ArgumentHelp("Seconds in-flight requests may run after SIGTERM before going back to the queue.", valueName: "seconds"))
    var grace: Int = 10

    @Option(help: ArgumentHelp("Also serve the SageMaker-compatible HTTP API on HOST:PORT (a bare PORT means 127.0.0.1:PORT).", valueName: "host:port"))
    var listen: String?

    @Flag(help: "Allow --listen on a non-loopback address (needs [http] auth_token in spool.toml).")
    var allowRemote = false

    @Option(help: ArgumentHelp("Serve HTTPS with this PEM certificate (chain, leaf first); needs --tls-key.", valueName: "file"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("The PEM private key of --tls-cert.", valueName: "file"))
    var tlsKey: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String?

    func validate() throws {
        if let listen {
            do { _ = try ListenAddress.parse(listen) } catch { throw ValidationError("--listen \(error.description)") }
        } else if allowRemote {
            throw ValidationError("--allow-remote needs --listen")
        }
        if let poll, !(poll > 0 && poll <= 3600) { throw ValidationError("--poll must be between 0 and 3600 seconds") }
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        if tlsCert != nil && listen == nil { throw ValidationError("--tls-cert needs --listen") }
        if grace < 0 { throw ValidationError("--grace must not be negative") }
    }

    func run() async throws {
        let logger = LogSetup.bootstrap(level: logLevel)
        let config = try options.loadConfig()
        DescriptorLimit.raise()
        var address: ListenAddress?
        if let listen {
            let parsed = try ListenAddress.parse(listen)
            do { try parsed.checkPolicy(allowRemote: allowRemote, authToken: config.http.authToken, hasCredentials: config.http.credentials != nil) } catch {
                throw CLIError.usage(error.description)
            }
            address = parsed
        }
        var tls: TLSConfiguration?
        if let tlsCert, let tlsKey {
            do { tls = try TLSFiles.configuration(certificate: tlsCert, key: tlsKey) } catch {
                throw CLIError.usage("\(error)")
            }
        }
        let daemon: SpoolDaemon
        do {
            daemon = try await SpoolDaemon(layout: options.layout, config: config, logger: logger)
        } catch {
            throw CLIError.failure("cannot start on \(options.layout.root): \(error)")
        }
        let modelGuard = GuardModels.start(for: daemon)
        defer { withExtendedLifetime(modelGuard) {} }
        var serveOptions = SpoolDaemon.Options(pollSeconds: poll)
        serveOptions.gracePeriod = .seconds(grace)
        let services = address.map { [SpoolHTTPServer(engine: daemon.engine, address: $0, logger: logger, tls: tls).serviceConfiguration] } ?? []
        try await daemon.serve(options: serveOptions, services: services)
    }
}

struct Drain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract: "For cron: admit everything present, process it, exit (0 all succeeded, 1 some failed)."
    )

    @OptionGroup var options: RootOptions

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String?

    func run() async throws {
        let logger = LogSetup.bootstrap(level: logLevel ?? "warning")
        let config = try options.loadConfig()
        let daemon: SpoolDaemon
        do {
            daemon = try await SpoolDaemon(layout: options.layout, config: config, logger: logger)
        } catch {
            throw CLIError.failure("cannot start on \(options.layout.root): \(error)")
        }
        let modelGuard = GuardModels.start(for: daemon)
        defer { withExtendedLifetime(modelGuard) {} }
        let results = try await daemon.drain()
        let failed = results.filter { $0.state != .succeeded }
        if options.json {
            struct Summary: Encodable { var processed: Int; var succeeded: Int; var failed: Int }
            Output.json(Summary(processed: results.count, succeeded: results.count - failed.count, failed: failed.count))
        } else {
            Output.line("\(results.count) processed, \(results.count - failed.count) succeeded, \(failed.count) failed")
            for r in failed {
                Output.line("  \(r.id)  \(r.state.rawValue)  \(r.inputPath): \(r.failureReason ?? "")")
            }
        }
        if !failed.isEmpty { throw ExitCode(1) }
    }
}
