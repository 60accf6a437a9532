import ArgumentParser
import Foundation
import SpoolCore

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "init", abstract: "Create a spool root with a commented spool.toml.")

    @Argument(help: "Where to create it (default: $SPOOL_ROOT, else ./spool).")
    var directory: String?

    func run() throws {
        let layout = SpoolLayout(root: directory ?? ProcessInfo.processInfo.environment["SPOOL_ROOT"] ?? "spool")
        let fm = FileManager.default
        do {
            for folder in ["incoming", "outputs", "errors", SpoolLayout.internalDirectory] {
                try fm.createDirectory(atPath: layout.path(folder), withIntermediateDirectories: true)
            }
            if !fm.fileExists(atPath: layout.configPath) {
                try Data(Self.template.utf8).write(to: URL(fileURLWithPath: layout.configPath))
            }
        } catch {
            throw CLIError.failure("cannot create \(layout.root): \(error.localizedDescription)")
        }
        print("Spool root ready at \(layout.root)")
        print("  drop payloads into  \(layout.path("incoming"))/")
        print("  results appear in   \(layout.path("outputs"))/<name>.out")
        print("  error markers in    \(layout.path("errors"))/<name>.error.json")
        print("  start it with       spool serve --root \(layout.root)")
    }

    static let template = """
        # Spool configuration. Every key is optional; this file with only comments behaves like
        # no file at all: one endpoint "default" running the builtin sha256 model.
        #
        # [spool]
        # delete_succeeded_inputs = true    # remove a payload once its request succeeds
        # keep_failed_inputs = true         # keep failed payloads for `spool retry` until removed
        # retain_finished = "14d"           # finished requests older than this are removed (their
        #                                   # ledger rows and kept inputs); 0 keeps everything
        # retain_outputs = false            # true: their outputs and error markers are removed too
        #
        # [ledger]                          # several hosts on one shared root: a PostgreSQL ledger
        # url = "postgres://spool:SECRET@db.internal:5432/spool"   # SPOOL_LEDGER_URL wins over it
        # lease_seconds = 30                # a host silent this long is taken over

        [endpoints.default]
        model = { builtin = "sha256" }      # builtin: echo, sha256, wc (fail, sleep: test helpers)
        # model = { command = ["python3", "model.py"] }                      # stdin → stdout
        # model = { container = { serve = ["python3", "serve.py"], port = 8080 } }
        # model = { url = "http://127.0.0.1:8080" }
        # max_concurrent_invocations_per_instance = 1   # 1–1000
        # instances = { min = 0, max = 1, idle_seconds = 300 }  # builtin: max = CPU cores
        # invocation_timeout_seconds = 900  # 1–3600
        # request_ttl_seconds = 21600       # 60–21600
        # max_payload_bytes = 1073741824
        # chunk_bytes = 1048576             # 4 KiB–64 MiB
        # split = "none"                    # or "line"
        # max_attempts = 1                  # 1–10
        # incoming = "incoming"             # folders, relative to the root
        # outputs = "outputs"
        # errors = "errors"

        # Another endpoint: drop into <root>/wordcount/incoming, results in <root>/wordcount/outputs.
        # [endpoints.wordcount]
        # model = { builtin = "wc" }

        """
}
