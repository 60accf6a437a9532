import Foundation
import Glibc
import SpoolCore
import SpoolLedger
import Testing

extension IntegrationTests {
    /// The status page of a real daemon, loaded by a real browser (Debian's `chromium`, headless,
    /// installed by `scripts/test`): the DOM it renders, and a screenshot kept as an artifact.
    @Suite(.serialized) struct StatusPageBrowser {
        static let hostile = "<img src=x onerror=alert(1)>.txt"

        /// Where the screenshot is kept: `$SPOOL_TEST_ARTIFACTS`, else `<package>/.build/test-artifacts`.
        static let artifacts: String = {
            if let path = ProcessInfo.processInfo.environment["SPOOL_TEST_ARTIFACTS"], !path.isEmpty { return path }
            return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent(".build/test-artifacts").path
        }()

        static var chromium: String? {
            ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
        }

        /// Runs headless Chromium on `url` with `arguments`; returns its standard output.
        static func browse(_ url: String, _ arguments: [String], profile: String) async throws -> String {
            let browser = try #require(chromium, "chromium is not installed (scripts/test installs it)")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: browser)
            process.arguments = [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--user-data-dir=\(profile)", "--window-size=1280,1400", "--virtual-time-budget=2000",
            ] + arguments + [url]
            let output = profile + ".out"
            FileManager.default.createFile(atPath: output, contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
            process.standardError = FileHandle.nullDevice
            try process.run()
            let deadline = ContinuousClock.now + .seconds(60)
            while process.isRunning {
                if ContinuousClock.now > deadline {
                    process.terminate()
                    throw HarnessError("chromium did not finish within 60 s")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            return Files.text(output) ?? ""
        }

        /// A request queued 2 minutes ago with a 60-second TTL: it expires when a worker reaches it.
        static func seedStale(_ root: SpoolRoot) async throws {
            try Files.makeDirectories(root.path + "/.spool")
            let ledger = try SQLiteLedger(path: root.path + "/.spool/ledger.sqlite")
            let request = InferenceRequest(
                id: "stale-1", endpoint: "default", source: .drop, inputPath: "stale.txt", claimToken: "token-stale",
                payloadBytes: 5, ttlSeconds: 60, timeoutSeconds: 900, maxAttempts: 1, receivedAt: Date().addingTimeInterval(-120),
                outputLocation: "outputs/stale.txt.out", failureLocation: "errors/stale.txt.error.json")
            try Files.makeDirectories(root.path + "/" + request.claimDirectory)
            try Files.write(root.path + "/" + request.claimedPayloadPath, "stale")
            _ = try await ledger.admit(request, initialFailure: nil)
        }

        @Test("headless Chromium renders the live page: every endpoint's counts, a failure's reason, a hostile file name as text",
              .timeLimit(.minutes(3)))
        func pageInAHeadlessBrowser() async throws {
            let root = try SpoolRoot(config: """
                [endpoints.default]
                model = { builtin = "echo" }

                [endpoints.broken]
                model = { builtin = "fail" }

                [endpoints.slow]
                model = { command = ["sleep", "600"] }
                """)
            try await Self.seedStale(root)
            let port = try freePort()
            let daemon = try root.serve(["--listen", "127.0.0.1:\(port)"])
            try await root.waitUntil("the API") { rawHTTP(port: port, "GET", "/ping")?.status == 200 }
            // Every state: succeeded, failed (the hostile name), running and queued, cancelled, expired.
            for i in 0..<3 { try Files.write(root.incoming + "/ok-\(i).txt", "hello \(i)") }
            try Files.makeDirectories(root.path + "/broken/incoming")
            try Files.write(root.path + "/broken/incoming/" + Self.hostile, "x")
            try Files.makeDirectories(root.path + "/slow/incoming")
            for i in 0..<3 { try Files.write(root.path + "/slow/incoming/job-\(i).txt", "\(i)") }
            try await root.waitUntil("the hostile file's marker") {
                Files.exists(root.path + "/broken/errors/" + Self.hostile + ".error.json")
            }
            try await root.waitUntil("three outputs") { (0..<3).allSatisfy { Files.exists(root.output("ok-\($0).txt")) } }
            let deadline = ContinuousClock.now + .seconds(30)
            while try await root.list().filter({ $0.InputLocation.contains("/slow/") }).map(\.State).sorted() != ["queued", "queued", "running"] {
                guard ContinuousClock.now < deadline else { throw HarnessError("the slow endpoint's requests\n\(root.diagnostics)") }
                try await Task.sleep(for: .milliseconds(50))
            }
            let queued = try #require(try await root.list().first { $0.InputLocation.contains("/slow/") && $0.State == "queued" })
            #expect(try await root.run("cancel", [queued.InferenceId]).status == 0)
            let failed = try #require(try await root.list().first { $0.InputLocation.hasSuffix(Self.hostile) })
            #expect(failed.State == "failed")
            let stale = try await root.request("stale-1")
            #expect(stale.State == "expired")

            try Files.makeDirectories(Self.artifacts)
            let base = root.base + "/chromium"
            let dom = try await Self.browse("http://127.0.0.1:\(port)/", ["--dump-dom"], profile: base + "-dom")
            #expect(dom.contains("data-endpoint=\"default\"") && dom.contains("data-endpoint=\"slow\""), "\(dom.prefix(2000))")
            func count(_ endpoint: String, _ name: String) -> String? {
                guard let section = dom.range(of: "data-endpoint=\"\(endpoint)\"") else { return nil }
                let rest = dom[section.upperBound...]
                guard let start = rest.range(of: "<dd class=\"\(name)\">"), let end = rest[start.upperBound...].range(of: "</dd>") else { return nil }
                return String(rest[start.upperBound..<end.lowerBound])
            }
            #expect(count("default", "processed") == "3")
            #expect(count("default", "expired") == "1")
            #expect(count("broken", "failed") == "1")
            #expect(count("slow", "running") == "1")
            #expect(count("slow", "queued") == "1")
            #expect(count("slow", "cancelled") == "1")
            let reason = try #require(failed.FailureReason)
            #expect(dom.contains(reason), "the failure's reason as the ledger has it: \(reason)")
            #expect(dom.contains("&lt;img src=x onerror=alert(1)&gt;.txt"), "the hostile name shows as text")
            #expect(!dom.contains("<img"), "and never becomes an element")
            #expect(dom.contains("<svg"), "the charts are drawn")

            // The request's own page, reached as a user would, by its InferenceId.
            let detail = try await Self.browse("http://127.0.0.1:\(port)/ui/requests?id=\(failed.InferenceId)", ["--dump-dom"], profile: base + "-detail")
            #expect(detail.contains(failed.InferenceId) && detail.contains("ModelError"))
            #expect(!detail.contains("<img"))

            let screenshot = Self.artifacts + "/status-page.png"
            try? FileManager.default.removeItem(atPath: screenshot)
            _ = try await Self.browse("http://127.0.0.1:\(port)/", ["--screenshot=\(screenshot)"], profile: base + "-shot")
            let png = try #require(Files.read(screenshot), "a screenshot at \(screenshot)")
            #expect(png.count > 10_000 && Array(png.prefix(4)) == [0x89, 0x50, 0x4E, 0x47], "a PNG of the page")
            #expect(daemon.isRunning)
        }
    }
}
