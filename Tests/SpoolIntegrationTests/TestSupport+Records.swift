import Foundation
import Testing

/// A line of `events.jsonl`, as the README describes it (decoded by the test, not the product).
struct Event: Decodable {
    struct RequestParameters: Decodable {
        var endpointName: String
        var inputLocation: String
        var contentType: String?
        var accept: String?
    }

    struct ResponseParameters: Decodable {
        var outputLocation: String
        var contentType: String?
    }

    var eventVersion: String
    var eventSource: String
    var eventName: String
    var eventTime: String
    var receivedTime: String
    var invocationStatus: String
    var inferenceId: String
    var requestParameters: RequestParameters
    var responseParameters: ResponseParameters?
    var failureReason: String?
    var failureCode: String?
    var failureLocation: String?
}

/// `errors/<path>.error.json`.
struct Marker: Decodable {
    var inferenceId: String
    var endpointName: String?
    var inputLocation: String
    var keptInputLocation: String?
    var failureCode: String
    var failureReason: String
    var attempts: Int
    var receivedTime: String
    var failedTime: String
}

/// One request in `spool status ID --json`, `spool ls --json`, `spool wait --json`.
struct RequestInfo: Decodable {
    var InferenceId: String
    var State: String
    var Attempts: Int
    var InputLocation: String
    var OutputLocation: String
    var FailureLocation: String
    var PayloadBytes: Int
    var ContentType: String?
    var FailureCode: String?
    var FailureReason: String?
}

/// One endpoint's line of `spool status --json`.
struct QueueStatus: Decodable {
    var EndpointName: String
    var Queued: Int
    var Running: Int
    var Succeeded: Int
    var Failed: Int
    var Expired: Int
    var Cancelled: Int
}

/// A `spool.toml` with one default endpoint running `model`, plus `extra` lines for it.
func config(model: String, _ extra: String...) -> String {
    (["[endpoints.default]", #"model = { builtin = "\#(model)" }"#] + extra).joined(separator: "\n") + "\n"
}

extension SpoolRoot {
    func output(_ relative: String) -> String { "\(outputs)/\(relative).out" }
    func marker(_ relative: String) -> String { "\(errors)/\(relative).error.json" }

    /// Decodes a JSON file or value; throws (with the text) when it does not decode.
    func decode<T: Decodable>(_ type: T.Type, _ data: Data, what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch {
            throw HarnessError("\(what) is not a valid \(type): \(error)\n\(String(decoding: data, as: UTF8.self))")
        }
    }

    func readMarker(_ relative: String) throws -> Marker {
        guard let data = FileManager.default.contents(atPath: marker(relative)) else {
            throw HarnessError("no marker at \(marker(relative))\n\(diagnostics)")
        }
        return try decode(Marker.self, data, what: "the marker \(marker(relative))")
    }

    /// Every complete line of `events.jsonl`, decoded.
    func events() throws -> [Event] {
        guard let data = FileManager.default.contents(atPath: eventsPath) else { return [] }
        var lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        lines.removeLast()  // after the last newline: empty, or a line still being written
        return try lines.map { try decode(Event.self, Data($0), what: "the events.jsonl line") }
    }

    /// `spool status --json` for the default endpoint.
    func queueStatus(endpoint: String = "default") async throws -> QueueStatus {
        let result = try await run("status", ["--json"])
        guard result.status == 0 else { throw HarnessError("spool status exited \(result.status): \(result.stderr)") }
        for line in result.stdout.split(separator: UInt8(ascii: "\n")) {
            let status = try decode(QueueStatus.self, Data(line), what: "a spool status line")
            if status.EndpointName == endpoint { return status }
        }
        throw HarnessError("spool status shows no endpoint \(endpoint): \(result.text)")
    }

    /// `spool status ID --json`.
    func request(_ id: String) async throws -> RequestInfo {
        let result = try await run("status", [id, "--json"])
        guard result.status == 0 else { throw HarnessError("spool status \(id) exited \(result.status): \(result.stderr)") }
        return try decode(RequestInfo.self, result.stdout, what: "spool status \(id) --json")
    }

    /// `spool ls --json`: every request (up to `limit`).
    func list(limit: Int = 100_000) async throws -> [RequestInfo] {
        let result = try await run("ls", ["--json", "--limit", "\(limit)"])
        guard result.status == 0 else { throw HarnessError("spool ls exited \(result.status): \(result.stderr)") }
        return try result.stdout.split(separator: UInt8(ascii: "\n")).map {
            try decode(RequestInfo.self, Data($0), what: "a spool ls line")
        }
    }

    /// Waits until the ledger shows a request in `state` (polling `spool ls`, which is a process).
    func waitForState(_ state: String, timeout: Duration = .seconds(30)) async throws -> RequestInfo {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let found = try await list().first(where: { $0.State == state }) { return found }
            guard ContinuousClock.now < deadline else {
                throw HarnessError("no request reached \(state) within \(timeout)\n\(diagnostics)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Polls `spool status --json` until `condition` holds for the default endpoint.
    func waitForStatus(
        _ what: String, timeout: Duration = .seconds(60), _ condition: (QueueStatus) -> Bool
    ) async throws -> QueueStatus {
        let deadline = ContinuousClock.now + timeout
        while true {
            let status = try await queueStatus()
            if condition(status) { return status }
            guard ContinuousClock.now < deadline else {
                throw HarnessError("timed out after \(timeout) waiting for \(what); last status \(status)\n\(diagnostics)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
