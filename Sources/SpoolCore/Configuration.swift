import Foundation

/// Which model an endpoint runs.
public enum ModelSpec: Sendable, Equatable {
    /// An in-process model shipped with Spool (`echo`, `sha256`, `wc`; `fail` and `sleep` for tests).
    case builtin(String)
    /// One process per request: payload on stdin, output from stdout.
    case command([String])
    /// A SageMaker-style model server Spool starts and manages.
    case container(ContainerSpec)
    /// A SageMaker-style model server someone else runs.
    case url(String)

    public var isBuiltin: Bool {
        if case .builtin = self { true } else { false }
    }
}

/// How Spool runs the model servers of a `container` endpoint (SageMaker's serving contract).
public struct ContainerSpec: Sendable, Equatable {
    /// The argv that starts one server.
    public var serve: [String]
    /// Instance `i` listens on `port + i` (`SAGEMAKER_BIND_TO_PORT`).
    public var port = 8080
    /// Added to every instance's environment.
    public var env: [String: String] = [:]
    /// Added to one instance's environment, `{instance}` replaced by its index (0, 1, …).
    public var instanceEnv: [String: String] = [:]
    /// The servers' working folder: absolute, or relative to the root. Default: the root.
    public var workdir: String?
    /// How long a new server has to answer `GET /ping` with 200, 1–3600. Default 600.
    public var startupTimeoutSeconds = 600
    /// How often a running server is pinged, 1–3600; one that fails twice in a row is replaced.
    /// Default 30.
    public var healthCheckSeconds = 30
    /// Where this endpoint's `SAGEMAKER_SAFE_PORT_RANGE` blocks begin, and their size: instance
    /// `i` gets `safePortBase + i * safePortSize` and the `safePortSize - 1` ports after it.
    /// Assigned when the configuration is loaded, so no two instances of a root share a port.
    public var safePortBase = 20_000
    public var safePortSize = 100

    public init(serve: [String], port: Int = 8080) {
        self.serve = serve
        self.port = port
    }

    /// Instance `index`'s `SAGEMAKER_SAFE_PORT_RANGE`.
    public func safePortRange(instance index: Int) -> ClosedRange<Int> {
        let first = safePortBase + index * safePortSize
        return first...(first + safePortSize - 1)
    }

    /// The variables instance `index` gets on top of Spool's environment.
    public func environment(instance index: Int) -> [String: String] {
        var result = env
        for (name, value) in instanceEnv {
            result[name] = value.replacingOccurrences(of: "{instance}", with: String(index))
        }
        let safe = safePortRange(instance: index)
        result["SAGEMAKER_BIND_TO_PORT"] = String(port + index)
        result["SAGEMAKER_SAFE_PORT_RANGE"] = "\(safe.lowerBound)-\(safe.upperBound)"
        return result
    }
}

/// How a payload is handed to the model.
public enum SplitMode: String, Sendable, Equatable {
    /// The whole payload in one invocation.
    case none
    /// Newline-delimited records, batched across instances, reassembled in order.
    case line
}

/// Where finished-request notifications go besides `events.jsonl`.
public struct NotificationConfig: Sendable, Equatable {
    /// argv run with the event JSON on stdin for each success. Default: none.
    public var onSuccess: [String]?
    /// argv run with the event JSON on stdin for each failure. Default: none.
    public var onError: [String]?
    /// URL the event JSON is POSTed to. Default: none.
    public var webhook: String?
    /// Embed outputs of at most 128 KB in the event as base64. Default: false.
    public var includeInferenceResponse = false

    public init() {}
}

/// Model instances for an endpoint.
public struct InstanceConfig: Sendable, Equatable {
    /// Instances kept running when idle. Default 0 (scale to zero).
    public var min: Int
    /// Most instances at once, 1–64. Default 1; builtin models: one per CPU core.
    public var max: Int
    /// Idle seconds before an instance above `min` is stopped. Default 300.
    public var idleSeconds: Int

    public init(min: Int = 0, max: Int = 1, idleSeconds: Int = 300) {
        self.min = min
        self.max = max
        self.idleSeconds = idleSeconds
    }
}

/// One endpoint: a model and the folders it serves, mirroring SageMaker's AsyncInferenceConfig.
public struct EndpointConfig: Sendable, Equatable {
    public var name: String
    /// Drop folder, relative to the root. Default `incoming` ("default") or `NAME/incoming`.
    public var incomingDirectory: String
    /// Results folder, relative to the root. Default `outputs` or `NAME/outputs`.
    public var outputsDirectory: String
    /// Error-marker folder, relative to the root. Default `errors` or `NAME/errors`.
    public var errorsDirectory: String
    /// Default `{ builtin = "sha256" }`.
    public var model: ModelSpec = .builtin("sha256")
    /// In-flight requests per instance, 1–1000. Default 1.
    public var maxConcurrentInvocationsPerInstance = 1
    public var instances: InstanceConfig
    /// 1–3600 seconds. Default 900.
    public var invocationTimeoutSeconds = 900
    /// 60–21600 seconds. Default 21600.
    public var requestTTLSeconds = 21600
    /// Default 1 GiB.
    public var maxPayloadBytes: Int64 = 1 << 30
    /// Streaming chunk size, 4 KiB–64 MiB. Default 1 MiB.
    public var chunkBytes = 1 << 20
    /// Default `none`.
    public var split: SplitMode = .none
    /// With `split = "line"`: most bytes in one batch, 1 KiB–64 MiB. Default 6 MiB (SageMaker's MaxPayloadInMB).
    public var splitMaxBytes = 6 << 20
    /// With `split = "line"`: most records in one batch, 1–1,000,000. Default 1000.
    public var splitMaxRecords = 1000
    /// Attempts for retryable failures, 1–10. Default 1.
    public var maxAttempts = 1
    public var notifications = NotificationConfig()

    public init(name: String, model: ModelSpec = .builtin("sha256")) {
        self.name = name
        let prefix = name == "default" ? "" : "\(name)/"
        self.incomingDirectory = prefix + "incoming"
        self.outputsDirectory = prefix + "outputs"
        self.errorsDirectory = prefix + "errors"
        self.model = model
        self.instances = model.isBuiltin
            ? InstanceConfig(min: 0, max: Swift.max(1, ProcessInfo.processInfo.activeProcessorCount))
            : InstanceConfig()
    }

    /// Requests this endpoint may run at once in one process.
    public var concurrency: Int { instances.max * maxConcurrentInvocationsPerInstance }
}

/// Settings for the whole spool.
public struct SpoolConfig: Sendable, Equatable {
    public var endpoints: [EndpointConfig]
    /// Delete a payload once its request succeeds. Default true.
    public var deleteSucceededInputs = true
    /// Keep payloads of failed requests for `spool retry` until `spool gc` or retention.
    /// Default true.
    public var keepFailedInputs = true
    /// How long finished requests are kept (`[spool] retain_finished`): older ones lose their
    /// ledger row and kept input, removed by the daemon in small batches. Default 14 days;
    /// nil (`0`) keeps everything.
    public var retainFinished: TimeInterval? = 14 * 86400
    /// Whether retention removes the outputs and error markers of the requests it removes too
    /// (`[spool] retain_outputs`). Default false: outputs and markers are the user's.
    public var retainOutputs = false
    /// The HTTP API's settings (`[http]`).
    public var http = HTTPConfig()
    /// Where the ledger is: nil for the embedded SQLite file (`.spool/ledger.sqlite`), or a
    /// PostgreSQL URL (`[ledger] url`, or `SPOOL_LEDGER_URL`, which wins) shared by several hosts.
    public var ledgerURL: String?
    /// With PostgreSQL, how long a process's lease lasts unless renewed (`[ledger]
    /// lease_seconds`, default 30): a process silent that long is taken over.
    public var leaseSeconds = 30
    /// S3 bucket names the HTTP API maps to folders (`[buckets]`: `name = "/path"`); relative
    /// paths are inside the root. Default: none.
    public var buckets: [String: String] = [:]

    /// The buckets the S3 API serves and `s3://` InputLocations name: `[buckets]`, or, without
    /// it, one bucket `spool` that is the root itself (`""`).
    public var effectiveBuckets: [String: String] {
        buckets.isEmpty ? ["spool": ""] : buckets
    }

    public init(endpoints: [EndpointConfig] = [EndpointConfig(name: "default")]) {
        self.endpoints = endpoints
    }

    public func endpoint(named name: String) -> EndpointConfig? {
        endpoints.first { $0.name == name }
    }
}

/// Settings of the HTTP API (`spool serve --listen`).
public struct HTTPConfig: Sendable, Equatable {
    /// When set, requests need `Authorization: Bearer <token>` (or a SigV4 access key id equal
    /// to it). Required to listen on a non-loopback address. Default: none.
    public var authToken: String?
    /// Folders besides the spool root that `file://` InputLocations may name. Default: none.
    public var allowedInputDirectories: [String] = []
    /// Most requests waiting in the queue before the API answers 503. Default 100,000.
    public var maxQueued = 100_000
    /// A connection that sends or receives nothing this long is closed (a half-sent request
    /// included). Default 30, bounds 1–3600.
    public var idleTimeoutSeconds = 30
    /// Most connections open at once; more wait to be accepted. Default: half of the descriptors
    /// the process may open beyond 256 kept for the queue's own files (at least 16).
    public var maxConnections: Int?
    /// AWS credentials (`access_key_id`, `secret_access_key`): when set, every request but
    /// `/ping` must carry a valid SigV4 signature made with them (header or presigned URL).
    public var credentials: AWSCredentials?

    public init() {}
}

/// An access key id and its secret, as AWS clients are configured with.
public struct AWSCredentials: Sendable, Equatable {
    public var accessKeyID: String
    public var secretAccessKey: String

    public init(accessKeyID: String, secretAccessKey: String) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
    }
}
