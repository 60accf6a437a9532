import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import SpoolCore
import SpoolDaemon
import SpoolHTTP
import SpoolTestSupport
import Testing

/// Every HTTP suite is nested in this one, so the target runs one test at a time (two cores,
/// and each test runs a real daemon).
@Suite(.serialized) struct HTTPAPITests {}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// An HTTP answer, body collected.
struct Answer {
    var status: Int
    var headers: HTTPHeaders
    var body: Data

    var text: String { String(decoding: body, as: UTF8.self) }
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    func header(_ name: String) -> String? { headers.first(name: name) }
}

/// A real daemon (`SpoolDaemon.serve`) with the HTTP API on 127.0.0.1 and a kernel-chosen
/// port, on a temporary root whose `spool.toml` is `config`. The endpoint "default" echoes.
/// Outside the root: `outside/` (never readable), `allowed/` (in `allowed_input_dirs`) and
/// `bucket/` (bucket "data"); bucket "spool" is the root itself.
final class TestServer: Sendable {
    let base: String
    let layout: SpoolLayout
    let daemon: SpoolDaemon
    let port: Int
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    var root: String { layout.root }
    var url: String { "http://127.0.0.1:\(port)" }

    static func defaultConfig(base: String, extraHTTP: String = "", extra: String = "") -> String {
        """
        [http]
        allowed_input_dirs = ["\(base)/allowed"]
        \(extraHTTP)

        [buckets]
        spool = "."
        data = "\(base)/bucket"

        [endpoints.default]
        model = { builtin = "echo" }

        \(extra)
        """
    }

    /// Runs `body` against a fresh server, then stops it.
    static func with(extraHTTP: String = "", extra: String = "", _ body: (TestServer) async throws -> Void) async throws {
        let server = try await TestServer(extraHTTP: extraHTTP, extra: extra)
        do {
            try await body(server)
        } catch {
            await server.stop()
            throw error
        }
        let stop = await server.stop()
        #expect(throws: Never.self, "the daemon stops cleanly") { try stop.get() }
    }

    private init(extraHTTP: String, extra: String) async throws {
        base = try makeTemporaryDirectory(prefix: "spool-http")
        for folder in ["root", "outside", "allowed", "bucket"] {
            try FileManager.default.createDirectory(atPath: "\(base)/\(folder)", withIntermediateDirectories: true)
        }
        layout = SpoolLayout(root: base + "/root")
        try Self.defaultConfig(base: base, extraHTTP: extraHTTP, extra: extra).write(toFile: layout.configPath, atomically: true, encoding: .utf8)
        let config = try ConfigFile.load(layout: layout)
        var logger = Logger(label: "spool-http-test")
        logger.logLevel = .warning
        daemon = try await SpoolDaemon(layout: layout, config: config, logger: logger)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let server = SpoolHTTPServer(engine: daemon.engine, address: ListenAddress(port: 0), logger: logger) { bound in
            continuation.yield(bound.port)
        }
        // The daemon runs as a service of an outer group, so `stop` can shut it down gracefully
        // the way SIGTERM does.
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: DaemonService(daemon: daemon, http: server))], logger: logger
        ))
        self.group = group
        task = Task { try await group.run() }
        let waiter = Task { () -> Int? in
            for await port in ports { return port }
            return nil
        }
        let timeout = Task {
            try await Task.sleep(for: .seconds(30))
            continuation.finish()
        }
        defer { timeout.cancel() }
        guard let port = await waiter.value else { throw HarnessError("the HTTP server did not start within 30 s") }
        self.port = port
    }

    /// Shuts the daemon down gracefully (as SIGTERM does) and removes the folders.
    /// - Returns: how the daemon's run ended.
    @discardableResult
    func stop() async -> Result<Void, any Error> {
        await group.triggerGracefulShutdown()
        let result = await task.result
        try? FileManager.default.removeItem(atPath: base)
        return result
    }

    /// Sends one request with AsyncHTTPClient.
    func send(_ method: HTTPMethod = .POST, _ path: String, headers: [(String, String)] = [], body: Data? = nil,
              timeout: TimeAmount = .seconds(30)) async throws -> Answer {
        var request = HTTPClientRequest(url: url + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: timeout)
        let collected = try await response.body.collect(upTo: 16 << 20)
        return Answer(status: Int(response.status.code), headers: response.headers, body: Data(buffer: collected))
    }

    /// InvokeEndpointAsync on endpoint `endpoint` with SageMaker headers (names without the
    /// `X-Amzn-SageMaker-` prefix).
    func invoke(_ fields: [String: String] = [:], endpoint: String = "default", body: Data? = nil, extra: [(String, String)] = []) async throws -> Answer {
        let headers = fields.sorted { $0.key < $1.key }.map { ("X-Amzn-SageMaker-\($0.key)", $0.value) } + extra
        return try await send(.POST, "/endpoints/\(endpoint)/async-invocations", headers: headers, body: body)
    }

    /// Writes `text` to `path` (folders made).
    func write(_ text: String, to path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Waits (bounded) for the request to finish; returns it.
    func finished(_ id: String, within seconds: Double = 30) async throws -> InferenceRequest {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let r = try await daemon.engine.ledger.request(id: id), r.state.isTerminal { return r }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw HarnessError("request \(id) did not finish within \(seconds) s")
    }

    /// The output of a finished request, which must have succeeded.
    func output(_ id: String) async throws -> String {
        let request = try await finished(id)
        guard request.state == .succeeded else {
            throw HarnessError("request \(id) ended \(request.state): \(request.failureReason ?? "")")
        }
        return try String(contentsOfFile: layout.path(request.outputLocation), encoding: .utf8)
    }
}

/// `SpoolDaemon.serve` with the HTTP API, as `spool serve --listen` runs it.
struct DaemonService: Service {
    let daemon: SpoolDaemon
    let http: SpoolHTTPServer

    func run() async throws {
        try await daemon.serve(options: .init(), services: [http.serviceConfiguration], signals: [])
    }
}

/// Expects a SageMaker JSON error.
func expectError(_ answer: Answer, status: Int = 400, type: String = "ValidationError", _ comment: Comment? = nil,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(answer.status == status, comment, sourceLocation: sourceLocation)
    #expect(answer.json["__type"] as? String == type, "\(answer.text)", sourceLocation: sourceLocation)
    #expect(!((answer.json["message"] as? String) ?? "").isEmpty, "\(answer.text)", sourceLocation: sourceLocation)
    #expect(answer.header("x-amzn-ErrorType") == type, sourceLocation: sourceLocation)
}
