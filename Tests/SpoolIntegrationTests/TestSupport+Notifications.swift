import Foundation
import Glibc
import Testing

/// A webhook receiver: a python3 `http.server` on 127.0.0.1 with an ephemeral port, killed when
/// this object goes away. Every POST appends a line to `<dir>/attempts` (its Content-Type); a
/// POST answered 200 leaves its body in `<dir>/delivered-N.json`.
final class WebhookServer: @unchecked Sendable {
    enum Mode: String {
        /// 200 to everything.
        case ok
        /// 500 to the first two POSTs, 200 after.
        case failTwice = "fail-twice"
        /// 500 to everything.
        case alwaysFail = "always-fail"
    }

    let directory: String
    let port: Int
    private let process = Process()

    static let script = """
        import http.server, os, sys
        mode, out = sys.argv[1], sys.argv[2]
        seen = [0]
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get('Content-Length', '0')))
                seen[0] += 1
                with open(os.path.join(out, 'attempts'), 'a') as f:
                    f.write(self.headers.get('Content-Type', '') + '\\n')
                ok = mode == 'ok' or (mode == 'fail-twice' and seen[0] > 2)
                if ok:
                    # Written under a temporary name and renamed, so a reader never sees it half-written.
                    final = os.path.join(out, 'delivered-%d.json' % seen[0])
                    with open(final + '.tmp', 'wb') as f:
                        f.write(body)
                    os.rename(final + '.tmp', final)
                self.send_response(200 if ok else 500)
                self.send_header('Content-Length', '0')
                self.end_headers()
            def log_message(self, *args):
                pass
        server = http.server.HTTPServer(('127.0.0.1', 0), Handler)
        with open(os.path.join(out, 'port.tmp'), 'w') as f:
            f.write(str(server.server_address[1]))
        os.rename(os.path.join(out, 'port.tmp'), os.path.join(out, 'port'))
        server.serve_forever()
        """

    init(mode: Mode, in base: String) async throws {
        directory = base + "/webhook-\(mode.rawValue)"
        try Files.makeDirectories(directory)
        try Files.write(directory + "/server.py", Self.script)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", directory + "/server.py", mode.rawValue, directory]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let deadline = ContinuousClock.now + .seconds(20)
        while Files.text(directory + "/port") == nil {
            guard process.isRunning, ContinuousClock.now < deadline else {
                throw HarnessError("the python3 webhook server did not start")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        port = Int(Files.text(directory + "/port")!.trimmingCharacters(in: .whitespacesAndNewlines))!
    }

    deinit {
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    var url: String { "http://127.0.0.1:\(port)/hook" }

    /// POSTs received so far, each with its Content-Type.
    var attempts: [String] {
        (Files.text(directory + "/attempts") ?? "").split(separator: "\n").map(String.init)
    }

    /// Bodies answered 200.
    var delivered: [Data] {
        Files.files(under: directory).filter { $0.hasPrefix("delivered-") && $0.hasSuffix(".json") }.sorted()
            .compactMap { FileManager.default.contents(atPath: directory + "/" + $0) }
    }
}

/// `spool stats --json`, one line per endpoint (only the fields the tests read).
struct EndpointStats: Decodable {
    struct Percentiles: Decodable {
        var p50: Double
        var p90: Double
        var p99: Double
    }

    var EndpointName: String
    var ApproximateBacklogSize: Int
    var ApproximateBacklogSizePerInstance: Double
    var ApproximateAgeOfOldestRequest: Double
    var HasBacklogWithoutCapacity: Int
    var InvocationsProcessed: Int
    var InvocationFailures: Int
    var ExpiredRequests: Int
    var NotificationFailures: Int
    var InstancesRunning: Int
    var TimeInBacklog: Percentiles
    var ModelLatency: Percentiles
    var TotalProcessingTime: Percentiles
    var LatencySamples: Int
}

extension SpoolRoot {
    /// `spool stats --json` for `endpoint`.
    func stats(endpoint: String = "default") async throws -> EndpointStats {
        let result = try await run("stats", ["--json"])
        guard result.status == 0 else { throw HarnessError("spool stats exited \(result.status): \(result.stderr)") }
        for line in result.stdout.split(separator: UInt8(ascii: "\n")) {
            let stats = try decode(EndpointStats.self, Data(line), what: "a spool stats line")
            if stats.EndpointName == endpoint { return stats }
        }
        throw HarnessError("spool stats shows no endpoint \(endpoint): \(result.text)")
    }

    /// The raw `events.jsonl` line of `id` (without its newline).
    func eventLine(_ id: String) -> Data? {
        guard let data = FileManager.default.contents(atPath: eventsPath) else { return nil }
        return data.split(separator: UInt8(ascii: "\n")).first { line in
            (try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])?["inferenceId"] as? String == id
        }.map { Data($0) }
    }

    /// Polls `spool stats --json` until `condition` holds for `endpoint` (bounded).
    @discardableResult
    func waitForStats(
        _ what: String, endpoint: String = "default", timeout: Duration = .seconds(60), _ condition: (EndpointStats) -> Bool
    ) async throws -> EndpointStats {
        let deadline = ContinuousClock.now + timeout
        while true {
            let stats = try await self.stats(endpoint: endpoint)
            if condition(stats) { return stats }
            guard ContinuousClock.now < deadline else {
                throw HarnessError("timed out after \(timeout) waiting for \(what); last stats \(stats)\n\(diagnostics)")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}

/// A JSON object as a dictionary.
func jsonObject(_ data: Data) throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw HarnessError("not a JSON object: \(String(decoding: data, as: UTF8.self))")
    }
    return object
}
