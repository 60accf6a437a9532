import Foundation
import Glibc
import Testing

/// `[endpoints.NAME]` with a model and a `notifications` inline table.
func notifyingEndpoint(_ name: String, model: String, _ notifications: String) -> String {
    "[endpoints.\(name)]\nmodel = { builtin = \"\(model)\" }\nnotifications = { \(notifications) }\n"
}

/// A TOML array of strings.
func tomlArray(_ items: [String]) -> String {
    "[" + items.map { "\"" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
        .joined(separator: ", ") + "]"
}

extension IntegrationTests {
    @Suite(.serialized) struct Notifications {
        @Test("on_success and on_error hooks get the event JSON on stdin, the same bytes as events.jsonl; drain waits for them",
              .timeLimit(.minutes(2)))
        func hooksReceiveTheEvent() async throws {
            let hooks = "/tmp/spool-it-hooks-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try Files.makeDirectories(hooks)
            defer { try? FileManager.default.removeItem(atPath: hooks) }
            let success = tomlArray(["sh", "-c", "cat > \(hooks)/success-$SPOOL_INFERENCE_ID.json"])
            let failure = tomlArray(["sh", "-c", "cat > \(hooks)/error-$SPOOL_INFERENCE_ID.json; echo oops >&2; exit 3"])
            let root = try SpoolRoot(config:
                notifyingEndpoint("default", model: "echo", "on_success = \(success), on_error = \(failure)")
                + notifyingEndpoint("bad", model: "fail", "on_success = \(success), on_error = \(failure)"))
            try Files.makeDirectories(root.path + "/bad/incoming")
            try Files.write(root.incoming + "/good.txt", "hello")
            try Files.write(root.path + "/bad/incoming/broken.txt", "nope")

            let drain = try await root.run("drain", timeout: .seconds(60))
            #expect(drain.status == 1, "one failed: \(drain.text)\(drain.stderr)")
            let events = try root.events()
            #expect(events.count == 2)
            let good = try #require(events.first { $0.invocationStatus == "Completed" })
            let bad = try #require(events.first { $0.invocationStatus == "Failed" })

            let successFile = "\(hooks)/success-\(good.inferenceId).json"
            let errorFile = "\(hooks)/error-\(bad.inferenceId).json"
            #expect(Files.exists(successFile), "drain returns after the hooks ran")
            #expect(Files.exists(errorFile))
            #expect(!Files.exists("\(hooks)/error-\(good.inferenceId).json") && !Files.exists("\(hooks)/success-\(bad.inferenceId).json"))
            let received = try #require(FileManager.default.contents(atPath: successFile))
            #expect(received.dropLast() == root.eventLine(good.inferenceId), "the hook got the events.jsonl line")
            let failed = try jsonObject(try #require(FileManager.default.contents(atPath: errorFile)))
            #expect(failed["failureCode"] as? String == bad.failureCode && failed["inferenceId"] as? String == bad.inferenceId)
            #expect(failed["invocationStatus"] as? String == "Failed")

            // The on_error hook exited 3: logged with the id and stderr tail, and counted.
            #expect(drain.stderr.contains("notification failed") && drain.stderr.contains(bad.inferenceId) && drain.stderr.contains("oops"))
            #expect(try await root.stats(endpoint: "bad").NotificationFailures == 1)
            #expect(try await root.stats(endpoint: "default").NotificationFailures == 0)
        }

        @Test("a webhook that fails twice is retried with back-off and delivered exactly once", .timeLimit(.minutes(2)))
        func webhookRetriesUntilDelivered() async throws {
            let root = try SpoolRoot()
            let server = try await WebhookServer(mode: .failTwice, in: root.base)
            try Files.write(root.path + "/spool.toml", notifyingEndpoint("default", model: "echo", "webhook = \"\(server.url)\""))
            _ = try root.serve()
            try Files.write(root.incoming + "/a.txt", "payload")
            try await root.waitUntil("the webhook delivery", timeout: .seconds(30)) { server.delivered.count == 1 }
            let event = try #require(try root.events().first)
            let delivered = try #require(server.delivered.first)
            #expect(delivered.dropLast() == root.eventLine(event.inferenceId), "the webhook got the events.jsonl line")
            #expect(server.attempts == Array(repeating: "application/json", count: 3))
            try await Task.sleep(for: .seconds(1))
            #expect(server.delivered.count == 1 && server.attempts.count == 3, "no delivery after success")
            #expect(try await root.stats().NotificationFailures == 0)
        }

        @Test("a webhook that always fails is counted as NotificationFailures and never holds up the queue",
              .timeLimit(.minutes(3)))
        func failingWebhookIsCountedNotBlocking() async throws {
            let root = try SpoolRoot()
            let server = try await WebhookServer(mode: .alwaysFail, in: root.base)
            try Files.write(root.path + "/spool.toml", notifyingEndpoint("default", model: "echo", "webhook = \"\(server.url)\""))
            let daemon = try root.serve()
            try Files.write(root.incoming + "/first.txt", "1")
            try await root.waitUntil("the first result") { Files.exists(root.output("first.txt")) }
            // The first webhook is still being retried (0.5 + 1 + 2 + 4 s): later requests run anyway.
            let started = ContinuousClock.now
            for i in 0..<5 { try Files.write(root.incoming + "/later-\(i).txt", "\(i)") }
            try await root.waitUntil("the later results", timeout: .seconds(30)) {
                (0..<5).allSatisfy { Files.exists(root.output("later-\($0).txt")) }
            }
            #expect(ContinuousClock.now - started < .seconds(7), "results do not wait for the webhook's retries")
            let stats = try await root.waitForStats("six notification failures", timeout: .seconds(60)) { $0.NotificationFailures >= 6 }
            #expect(stats.NotificationFailures == 6)
            #expect(server.attempts.count == 30, "5 attempts for each of 6 events")
            #expect(server.delivered.isEmpty)
            daemon.send(SIGTERM)
            #expect(try await daemon.waitForExit(timeout: .seconds(30)) == 0)
            #expect(daemon.stderr.contains("notification failed"))
        }

        @Test("include_inference_response embeds outputs of at most 128 KiB as base64, in events.jsonl and the hook",
              .timeLimit(.minutes(2)))
        func responseBodyIsEmbeddedWhenSmall() async throws {
            let hooks = "/tmp/spool-it-body-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try Files.makeDirectories(hooks)
            defer { try? FileManager.default.removeItem(atPath: hooks) }
            let hook = tomlArray(["sh", "-c", "cat > \(hooks)/$SPOOL_INFERENCE_ID.json"])
            let root = try SpoolRoot(config: notifyingEndpoint(
                "default", model: "echo", "include_inference_response = true, on_success = \(hook)"))
            let sizes = ["small": 1000, "limit": 131_072, "over": 131_073, "large": 300_000]
            for (name, bytes) in sizes { try Files.write(root.incoming + "/\(name).bin", payload(bytes, bytes: bytes)) }
            let drain = try await root.run("drain", timeout: .seconds(60))
            #expect(drain.status == 0, "\(drain.text)\(drain.stderr)")
            for (name, bytes) in sizes {
                let id = try #require(try root.events().first { $0.requestParameters.inputLocation.hasSuffix("/\(name).bin") }?.inferenceId)
                let line = try #require(root.eventLine(id))
                let event = try jsonObject(line)
                let body = event["responseBody"] as? [String: Any]
                if bytes <= 131_072 {
                    #expect(body?["encoding"] as? String == "BASE64", "\(name)")
                    let content = try #require(body?["content"] as? String)
                    #expect(Data(base64Encoded: content).map { [UInt8]($0) } == payload(bytes, bytes: bytes), "\(name)")
                } else {
                    #expect(body == nil, "\(name): \(bytes) bytes is over 128 KiB")
                }
                let hooked = try #require(FileManager.default.contents(atPath: "\(hooks)/\(id).json"))
                #expect(hooked.dropLast() == line, "\(name): the hook got the same JSON")
            }
        }
    }
}
