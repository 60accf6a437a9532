import Foundation
import Glibc
import Testing

/// The private PostgreSQL server `scripts/test` starts (`SPOOL_TEST_POSTGRES_URL`), reached with
/// the real `psql` client.
enum PostgresServer {
    static let url = ProcessInfo.processInfo.environment["SPOOL_TEST_POSTGRES_URL"]

    /// The server's socket folder (the URL's `?host=`).
    static var socketFolder: String? {
        url.flatMap { URLComponents(string: $0)?.queryItems?.first { $0.name == "host" }?.value }
    }

    /// Creates an empty database; returns its URL.
    static func freshDatabase() throws -> String {
        let url = try #require(url, "SPOOL_TEST_POSTGRES_URL is not set")
        let folder = try #require(socketFolder)
        let name = "spool_it_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let result = psql(url, "CREATE DATABASE \(name)")
        guard result.status == 0 else { throw HarnessError("psql: \(result.output)") }
        return "postgres://postgres@/\(name)?host=\(folder)"
    }

    /// Runs one SQL command with `psql` and returns its unaligned output.
    static func psql(_ url: String, _ sql: String) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["psql", url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        guard (try? process.run()) != nil else { return (127, "cannot start psql") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

extension IntegrationTests {
    /// `spool serve` with its ledger in PostgreSQL (`[ledger] url`, `SPOOL_LEDGER_URL`).
    @Suite(.serialized, .enabled(if: PostgresServer.url != nil, "SPOOL_TEST_POSTGRES_URL is not set (scripts/test starts a server and sets it)"))
    struct Postgres {
        @Test("[ledger] url: drops are processed with the ledger in PostgreSQL, the CLI reads it, and no SQLite file is made",
              .timeLimit(.minutes(2)))
        func serveWithPostgres() async throws {
            let url = try PostgresServer.freshDatabase()
            let root = try SpoolRoot(config: config(model: "sha256") + "\n[ledger]\nurl = \"\(url)\"\n")
            _ = try root.serve()
            try await root.warmUp()
            for i in 0..<20 { try Files.write(root.incoming + "/f\(i).txt", "payload \(i)\n") }
            try await root.waitForCount("outputs", toReach: 21, timeout: .seconds(60)) { Files.files(under: root.outputs).count }
            let status = try await root.queueStatus()
            #expect(status.Succeeded == 21 && status.Queued == 0 && status.Running == 0, "\(status)")
            #expect(PostgresServer.psql(url, "SELECT count(*) FROM requests WHERE state = 'succeeded'").output == "21")
            #expect(!Files.exists(root.path + "/.spool/ledger.sqlite"), "the ledger is in PostgreSQL")
            let owner = PostgresServer.psql(url, "SELECT count(*) FROM requests WHERE owner IS NOT NULL")
            #expect(owner.output == "0")
            // `spool wait` returns once a result is whole: its output is there.
            try Files.write(root.incoming + "/waited.txt", "waited\n")
            try await root.waitUntil("the waited request in the ledger") {
                PostgresServer.psql(url, "SELECT count(*) FROM requests WHERE input_path = 'waited.txt'").output == "1"
            }
            let waitedID = PostgresServer.psql(url, "SELECT id FROM requests WHERE input_path = 'waited.txt'").output
            let waited = try await root.run("wait", [waitedID, "--timeout", "60"])
            #expect(waited.status == 0, "\(waited.stderr)")
            #expect(Files.exists(root.output("waited.txt")), "the output is in place when wait returns")
            // The cluster's publisher writes the events (it starts publishing a few seconds after it takes the role).
            try await root.waitUntil("the events") { try root.events().filter { $0.invocationStatus == "Completed" }.count >= 22 }
            #expect(try root.events().filter { $0.invocationStatus == "Completed" }.count == 22)
        }

        @Test("a server that is not there, or a database that does not exist: serve stops at once with one line naming the server, the database and the reason",
              .timeLimit(.minutes(1)))
        func clearStartErrors() async throws {
            let folder = try #require(PostgresServer.socketFolder)
            let root = try SpoolRoot(config: config(model: "echo") + "\n[ledger]\nurl = \"postgres://spool@/queue?host=/nonexistent\"\n")
            let missing = try await root.run("serve", timeout: .seconds(30))
            #expect(missing.status != 0)
            #expect(missing.stderr.contains("/nonexistent/.s.PGSQL.5432") && missing.stderr.contains("queue"), "\(missing.stderr)")
            #expect(missing.stderr.split(separator: "\n").count == 1, "one line: \(missing.stderr)")
            // SPOOL_LEDGER_URL wins over the file.
            let noDatabase = try await root.run(
                "serve", timeout: .seconds(30), environment: ["SPOOL_LEDGER_URL": "postgres://postgres@/nosuchdb?host=\(folder)"])
            #expect(noDatabase.status != 0)
            #expect(noDatabase.stderr.contains("nosuchdb") && noDatabase.stderr.contains("does not exist"), "\(noDatabase.stderr)")
        }

        /// A root shared by `count` daemons (`spool serve --poll`), each its own "host"
        /// (`SPOOL_HOST_ID`), on one fresh database with 2-second leases.
        static func cluster(model: String, count: Int, extra: String = "") throws -> (root: SpoolRoot, url: String, daemons: [Child]) {
            let url = try PostgresServer.freshDatabase()
            let root = try SpoolRoot(config: """
                [endpoints.default]
                model = \(model)
                \(extra)
                [ledger]
                url = "\(url)"
                lease_seconds = 2
                """)
            let daemons = try (0..<count).map { i in
                try root.serve(["--poll", "0.2"], environment: ["SPOOL_HOST_ID": "host\(i)"])
            }
            return (root, url, daemons)
        }

        /// Every input has exactly one output with the model's content, and exactly one
        /// `Completed` event; the ledger agrees.
        static func expectExactlyOnce(_ root: SpoolRoot, url: String, names: [String], output: (String) -> String) throws {
            for name in names {
                #expect(Files.text(root.output(name)) == output(name), "output of \(name)")
            }
            #expect(Files.files(under: root.outputs).count == names.count, "no other outputs")
            let events = try root.events().filter { $0.invocationStatus == "Completed" }
            let byInput = Dictionary(grouping: events, by: { $0.requestParameters.inputLocation })
            #expect(events.count == names.count && byInput.count == names.count && byInput.values.allSatisfy { $0.count == 1 },
                    "\(events.count) Completed events for \(byInput.count) inputs of \(names.count)")
            #expect(PostgresServer.psql(url, "SELECT count(*) FROM requests WHERE state = 'succeeded'").output == "\(names.count)")
            #expect(PostgresServer.psql(url, "SELECT count(*) FROM requests WHERE state <> 'succeeded'").output == "0")
            #expect(Files.files(under: root.errors).isEmpty, "no error markers")
        }

        @Test("three daemons on one root and one database: 2,000 drops, one daemon kill -9'd mid-burst; each input gives exactly one output and one event",
              .timeLimit(.minutes(5)))
        func killNineMidBurst() async throws {
            // A process per request: the burst lasts seconds, long enough to catch the victim mid-way.
            let (root, url, daemons) = try Self.cluster(model: #"{ command = ["cat"] }"#, count: 3, extra: "instances = { min = 0, max = 2 }")
            try await root.waitUntil("three leases") { PostgresServer.psql(url, "SELECT count(*) FROM leases").output == "3" }
            let names = (0..<2000).map { String(format: "in-%04d.txt", $0) }
            for name in names {
                try Files.dropViaTemporary(root.incoming + "/" + name, Array("payload \(name)\n".utf8))
            }
            // Mid-burst, while the victim is running requests.
            try await root.waitUntil("host1 running requests", timeout: .seconds(60), every: .milliseconds(1)) {
                Int(PostgresServer.psql(url, "SELECT count(*) FROM requests WHERE state = 'running' AND owner LIKE 'host1-%'").output) ?? 0 > 0
            }
            daemons[1].send(SIGKILL)
            _ = try await daemons[1].waitForExit()
            // What it left running (almost always some: it was caught mid-way) must be rescued.
            let orphaned = Int(PostgresServer.psql(url, "SELECT count(*) FROM requests WHERE state = 'running' AND owner LIKE 'host1-%'").output) ?? 0
            try await root.waitForCount("outputs", toReach: 2000, timeout: .seconds(240), stall: .seconds(60)) { Files.files(under: root.outputs).count }
            try await root.waitForCount("events", toReach: 2000, timeout: .seconds(60)) {
                (try? root.events().filter { $0.invocationStatus == "Completed" }.count) ?? 0
            }
            try Self.expectExactlyOnce(root, url: url, names: names) { "payload \($0)\n" }
            #expect(daemons[0].isRunning && daemons[2].isRunning)
            if orphaned > 0 {
                #expect((daemons[0].stderr + daemons[2].stderr).contains("requeued requests of a stopped process"), "host1's running requests were rescued")
                #expect(PostgresServer.psql(url, "SELECT count(*) FROM leases WHERE owner LIKE 'host1-%'").output == "0", "its lease ended with the rescue")
            }
        }

        @Test("a daemon SIGSTOPped past its lease: the others take its requests over and finish each once; resumed, it publishes nothing of them",
              .timeLimit(.minutes(3)))
        func stoppedPastItsLease() async throws {
            // Each request takes 2 s, so the victim is caught holding some.
            let model = #"{ command = ["sh", "-c", "sleep 2; cat"] }"#
            let (root, url, daemons) = try Self.cluster(model: model, count: 3, extra: "instances = { min = 0, max = 2 }")
            try await root.waitUntil("three leases") { PostgresServer.psql(url, "SELECT count(*) FROM leases").output == "3" }
            let names = (0..<12).map { "job-\($0).txt" }
            for name in names { try Files.write(root.incoming + "/" + name, "job \(name)\n") }
            try await root.waitUntil("host1 running requests", timeout: .seconds(60)) {
                Int(PostgresServer.psql(url, "SELECT count(*) FROM requests WHERE state = 'running' AND owner LIKE 'host1-%'").output) ?? 0 > 0
            }
            let taken = PostgresServer.psql(url, "SELECT id FROM requests WHERE state = 'running' AND owner LIKE 'host1-%'").output
                .split(separator: "\n").map(String.init)
            daemons[1].send(SIGSTOP)
            // Its lease lapses (2 s); a maintenance round (every 5 s) rescues its requests, and the others run them.
            try await root.waitUntil("host1's requests finished by the others", timeout: .seconds(60)) {
                let finished = PostgresServer.psql(url, "SELECT count(*) FROM requests WHERE state = 'succeeded' AND id = ANY('{\(taken.joined(separator: ","))}')").output
                return finished == "\(taken.count)"
            }
            daemons[1].send(SIGCONT)
            try await root.waitForCount("outputs", toReach: names.count, timeout: .seconds(90)) { Files.files(under: root.outputs).count }
            try await root.waitForCount("events", toReach: names.count, timeout: .seconds(60)) {
                (try? root.events().filter { $0.invocationStatus == "Completed" }.count) ?? 0
            }
            // The resumed daemon's attempts end after their requests were taken over: fenced.
            try await root.waitUntil("host1 noticing", timeout: .seconds(30)) { daemons[1].stderr.contains("taken over") }
            try Self.expectExactlyOnce(root, url: url, names: names) { "job \($0)\n" }
            #expect(PostgresServer.psql(url, "SELECT count(*) FROM requests WHERE attempts > 1").output == "0", "a rescue uses no attempt")
        }

        @Test("the HTTP API on two daemons at once with the same InferenceId queues it once",
              .timeLimit(.minutes(2)))
        func sameInferenceIDOnTwoHosts() async throws {
            let url = try PostgresServer.freshDatabase()
            let root = try SpoolRoot(config: config(model: "echo") + "\n[ledger]\nurl = \"\(url)\"\n")
            let ports = [try freePort(), try freePort()]
            for (i, port) in ports.enumerated() {
                _ = try root.serve(["--poll", "0.2", "--listen", "127.0.0.1:\(port)"], environment: ["SPOOL_HOST_ID": "web\(i)"])
            }
            for port in ports { try await root.waitUntil("the API on \(port)") { rawHTTP(port: port, "GET", "/ping")?.status == 200 } }
            async let first = Task.detached { invokeAsync(port: ports[0], id: "same-id") }.value
            async let second = Task.detached { invokeAsync(port: ports[1], id: "same-id") }.value
            let statuses = await [first, second].sorted()
            #expect(statuses.contains(202), "\(statuses)")
            #expect(PostgresServer.psql(url, "SELECT count(*) FROM requests WHERE id = 'same-id'").output == "1")
            try await root.waitUntil("the output") { Files.files(under: root.outputs).count == 1 }
        }

        @Test("a finisher that died between the ledger and the rename: the publisher puts its output in place and drops a taken-over attempt's",
              .timeLimit(.minutes(1)))
        func publisherPlacesLeftOutputs() async throws {
            let url = try PostgresServer.freshDatabase()
            let root = try SpoolRoot(config: config(model: "echo") + "\n[ledger]\nurl = \"\(url)\"\n")
            // A first start makes the schema and the folders.
            let first = try root.serve()
            try await root.warmUp()
            first.send(SIGTERM)
            _ = try await first.waitForExit()
            // What the dead finisher left: the ledger says succeeded a minute ago (started at
            // 1,700,000,000,000 ms), its output still partial; an earlier attempt's too.
            let token = "01TOKEN.hostX-1-OLD"
            let inserted = PostgresServer.psql(url, """
                INSERT INTO requests (id, endpoint, source, input_path, claim_token, payload_bytes, ttl_seconds, timeout_seconds,
                    max_attempts, state, received_at, started_at, finished_at, attempts, output_location, failure_location)
                VALUES ('left-1', 'default', 'drop', 'left.txt', '\(token)', 5, 3600, 900, 1, 'succeeded',
                    1700000000000, 1700000000000, (extract(epoch from now()) * 1000)::bigint - 60000, 1,
                    'outputs/left.txt.out', 'errors/left.txt.error.json')
                """)
            #expect(inserted.status == 0, "\(inserted.output)")
            let partial = root.path + "/.spool/partial"
            try Files.write(partial + "/\(token).hostY-2-FIN.1700000000000.out", "the finisher's output\n")
            try Files.write(partial + "/\(token).hostZ-3-OLD.1699999990000.out", "a taken-over attempt's\n")
            _ = try root.serve()
            try await root.waitUntil("the output in place") { Files.exists(root.output("left.txt")) }
            #expect(Files.text(root.output("left.txt")) == "the finisher's output\n")
            try await root.waitUntil("its event") { try root.events().contains { $0.inferenceId == "left-1" } }
            #expect(Files.files(under: partial).filter { $0.contains("01TOKEN") }.isEmpty, "no partial left")
            #expect(PostgresServer.psql(url, "SELECT notified FROM requests WHERE id = 'left-1'").output == "t")
        }

        @Test("connections to the database cut three times mid-burst: every input still gives exactly one output and one event",
              .timeLimit(.minutes(3)))
        func connectionsLostMidBurst() async throws {
            let (root, url, daemons) = try Self.cluster(model: #"{ command = ["cat"] }"#, count: 2, extra: "instances = { min = 0, max = 2 }")
            try await root.waitUntil("two leases") { PostgresServer.psql(url, "SELECT count(*) FROM leases").output == "2" }
            let names = (0..<600).map { String(format: "cut-%04d.txt", $0) }
            for name in names { try Files.dropViaTemporary(root.incoming + "/" + name, Array("payload \(name)\n".utf8)) }
            for _ in 0..<3 {
                try await root.waitUntil("requests running", every: .milliseconds(5)) {
                    Int(PostgresServer.psql(url, "SELECT count(*) FROM requests WHERE state = 'running'").output) ?? 0 > 0
                }
                let cut = PostgresServer.psql(url, """
                    SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                    WHERE datname = current_database() AND pid <> pg_backend_pid()
                    """)
                #expect(cut.status == 0 && (Int(cut.output) ?? 0) > 0, "\(cut.output)")
                try await Task.sleep(for: .milliseconds(300))
            }
            try await root.waitForCount("outputs", toReach: names.count, timeout: .seconds(120)) { Files.files(under: root.outputs).count }
            try await root.waitForCount("events", toReach: names.count, timeout: .seconds(60)) {
                (try? root.events().filter { $0.invocationStatus == "Completed" }.count) ?? 0
            }
            try Self.expectExactlyOnce(root, url: url, names: names) { "payload \($0)\n" }
            #expect(daemons.allSatisfy { $0.isRunning })
        }
    }
}

/// `InvokeEndpointAsync` with an inline body and a chosen InferenceId; the HTTP status.
func invokeAsync(port: Int, id: String) -> Int {
    rawHTTP(port: port, "POST", "/endpoints/default/async-invocations", body: #"{"x": 1}"#,
            headers: ["X-Amzn-SageMaker-Inference-Id": id, "Content-Type": "application/json"])?.status ?? 0
}
