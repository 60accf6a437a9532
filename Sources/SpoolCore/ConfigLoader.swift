import Foundation

/// A configuration Spool refuses, naming the file, the key and the reason.
public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public var file: String
    public var key: String?
    public var reason: String

    public init(file: String, key: String?, reason: String) {
        self.file = file
        self.key = key
        self.reason = reason
    }

    public var description: String {
        if let key { "\(file): \(key): \(reason)" } else { "\(file): \(reason)" }
    }
}

/// Reads `spool.toml` into a `SpoolConfig`, refusing unknown keys, wrong types and values out of
/// bounds. Without a file, the configuration is one `default` endpoint with builtin `sha256`.
public enum ConfigLoader {
    public static let builtinModels: Set<String> = ["echo", "sha256", "wc", "fail", "sleep"]

    /// The configuration from the text of `file` (nil when the root has no `spool.toml`: the
    /// defaults), with the environment's overrides. Reading the file is the caller's (`SpoolCore`
    /// does no I/O): `ConfigFile.load(layout:)` in `SpoolDaemon`.
    /// - Parameter environment: `SPOOL_LEDGER_URL`, when set, wins over `[ledger] url`.
    public static func resolve(text: String?, file: String, environment: [String: String]) throws(ConfigError) -> SpoolConfig {
        var config = try text.map { text throws(ConfigError) in try parse(text, file: file) } ?? SpoolConfig()
        if let url = environment["SPOOL_LEDGER_URL"], !url.isEmpty {
            config.ledgerURL = try Reader.ledgerURL(url, file: "SPOOL_LEDGER_URL")
        }
        return config
    }

    public static func parse(_ text: String, file: String) throws(ConfigError) -> SpoolConfig {
        let table: TOMLTable
        do {
            table = try TOMLParser.parse(text)
        } catch {
            throw ConfigError(file: file, key: nil, reason: error.description)
        }
        var reader = Reader(file: file)
        return try reader.config(table)
    }

    private struct Reader {
        let file: String

        func fail(_ key: String, _ reason: String) -> ConfigError {
            ConfigError(file: file, key: key, reason: reason)
        }

        func checkKeys(_ table: TOMLTable, allowed: Set<String>, at prefix: String) throws(ConfigError) {
            for key in table.keys where !allowed.contains(key) {
                let known = allowed.sorted().joined(separator: ", ")
                throw fail(prefix.isEmpty ? key : "\(prefix).\(key)", "unknown key (known keys: \(known))")
            }
        }

        func int(_ value: TOMLValue, _ key: String, _ bounds: ClosedRange<Int64>) throws(ConfigError) -> Int64 {
            guard case .integer(let i) = value else { throw fail(key, "must be an integer, not a \(value.typeName)") }
            guard bounds.contains(i) else {
                throw fail(key, "must be between \(bounds.lowerBound) and \(bounds.upperBound), got \(i)")
            }
            return i
        }

        func bool(_ value: TOMLValue, _ key: String) throws(ConfigError) -> Bool {
            guard case .bool(let b) = value else { throw fail(key, "must be true or false, not a \(value.typeName)") }
            return b
        }

        /// A retention period: an age string (`"14d"`), or `0` / `"0"` to keep everything (nil).
        func retention(_ value: TOMLValue, _ key: String) throws(ConfigError) -> TimeInterval? {
            if case .integer(0) = value { return nil }
            guard case .string(let s) = value else {
                throw fail(key, "must be an age like \"14d\" (s, m, h, d, w), or 0 to keep everything, not a \(value.typeName)")
            }
            if s == "0" { return nil }
            guard let seconds = Age.parse(s), seconds > 0 else {
                throw fail(key, "must be an age like \"14d\" (s, m, h, d, w), or 0 to keep everything, got \"\(s)\"")
            }
            return seconds
        }

        func string(_ value: TOMLValue, _ key: String) throws(ConfigError) -> String {
            guard case .string(let s) = value else { throw fail(key, "must be a string, not a \(value.typeName)") }
            return s
        }

        func argv(_ value: TOMLValue, _ key: String) throws(ConfigError) -> [String] {
            guard case .array(let items) = value, !items.isEmpty else {
                throw fail(key, "must be a non-empty array of strings, like [\"prog\", \"arg\"]")
            }
            var out: [String] = []
            for item in items {
                guard case .string(let s) = item else { throw fail(key, "must contain only strings") }
                out.append(s)
            }
            guard !out[0].isEmpty else { throw fail(key, "the program name is empty") }
            return out
        }

        func table(_ value: TOMLValue, _ key: String) throws(ConfigError) -> TOMLTable {
            guard case .table(let t) = value else { throw fail(key, "must be a table, not a \(value.typeName)") }
            return t
        }

        /// A PostgreSQL URL (the driver parses the rest when it connects).
        static func ledgerURL(_ url: String, file: String) throws(ConfigError) -> String {
            guard url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") else {
                throw ConfigError(file: file, key: "ledger.url", reason: "must be postgres://USER[:PASSWORD]@HOST[:PORT]/DB (or postgres://USER@/DB?host=/socket/folder)")
            }
            return url
        }

        /// A folder inside the root, outside `.spool`.
        func directory(_ value: TOMLValue, _ key: String) throws(ConfigError) -> String {
            let s = try string(value, key)
            let parts = s.split(separator: "/").filter { $0 != "." }
            guard !s.hasPrefix("/"), !parts.isEmpty, !parts.contains(".."), parts.first != ".spool" else {
                throw fail(key, "must be a folder inside the spool root (relative, no '..', not under .spool), got \"\(s)\"")
            }
            if let first = parts.first, SpoolLayout.rootFiles.contains(String(first)) {
                throw fail(key, "must not be the root's own \(first), got \"\(s)\"")
            }
            return parts.joined(separator: "/")
        }

        mutating func config(_ root: TOMLTable) throws(ConfigError) -> SpoolConfig {
            try checkKeys(root, allowed: ["endpoints", "spool", "http", "buckets", "ledger"], at: "")
            var config = SpoolConfig(endpoints: [])
            if let value = root["ledger"] {
                let t = try table(value, "ledger")
                try checkKeys(t, allowed: ["url", "lease_seconds"], at: "ledger")
                if let v = t["url"] { config.ledgerURL = try Self.ledgerURL(try string(v, "ledger.url"), file: file) }
                if let v = t["lease_seconds"] { config.leaseSeconds = Int(try int(v, "ledger.lease_seconds", 2...3600)) }
            }
            if let value = root["spool"] {
                let t = try table(value, "spool")
                try checkKeys(
                    t, allowed: ["delete_succeeded_inputs", "keep_failed_inputs", "retain_finished", "retain_outputs"],
                    at: "spool")
                if let v = t["delete_succeeded_inputs"] {
                    config.deleteSucceededInputs = try bool(v, "spool.delete_succeeded_inputs")
                }
                if let v = t["keep_failed_inputs"] { config.keepFailedInputs = try bool(v, "spool.keep_failed_inputs") }
                if let v = t["retain_finished"] { config.retainFinished = try retention(v, "spool.retain_finished") }
                if let v = t["retain_outputs"] { config.retainOutputs = try bool(v, "spool.retain_outputs") }
            }
            if let value = root["http"] {
                let t = try table(value, "http")
                try checkKeys(
                    t, allowed: [
                        "auth_token", "allowed_input_dirs", "max_queued", "idle_timeout_seconds", "max_connections",
                        "access_key_id", "secret_access_key",
                    ],
                    at: "http")
                switch (t["access_key_id"], t["secret_access_key"]) {
                case (nil, nil): break
                case (let id?, let secret?):
                    let accessKeyID = try string(id, "http.access_key_id")
                    let secretAccessKey = try string(secret, "http.secret_access_key")
                    guard accessKeyID.range(of: "^[A-Za-z0-9_-]{3,128}$", options: .regularExpression) != nil else {
                        throw fail("http.access_key_id", "must be 3 to 128 letters, digits, _ and -")
                    }
                    guard secretAccessKey.count >= 16 else { throw fail("http.secret_access_key", "must be at least 16 characters") }
                    config.http.credentials = AWSCredentials(accessKeyID: accessKeyID, secretAccessKey: secretAccessKey)
                case (nil, _): throw fail("http.access_key_id", "is required with secret_access_key")
                case (_, nil): throw fail("http.secret_access_key", "is required with access_key_id")
                }
                if let v = t["auth_token"] {
                    let token = try string(v, "http.auth_token")
                    guard token.count >= 16 else { throw fail("http.auth_token", "must be at least 16 characters") }
                    config.http.authToken = token
                }
                if let v = t["allowed_input_dirs"] {
                    config.http.allowedInputDirectories = try argv(v, "http.allowed_input_dirs")
                    for dir in config.http.allowedInputDirectories where !dir.hasPrefix("/") {
                        throw fail("http.allowed_input_dirs", "must be absolute paths, got \"\(dir)\"")
                    }
                }
                if let v = t["max_queued"] { config.http.maxQueued = Int(try int(v, "http.max_queued", 1...10_000_000)) }
                if let v = t["idle_timeout_seconds"] {
                    config.http.idleTimeoutSeconds = Int(try int(v, "http.idle_timeout_seconds", 1...3600))
                }
                if let v = t["max_connections"] { config.http.maxConnections = Int(try int(v, "http.max_connections", 1...100_000)) }
            }
            if let value = root["buckets"] {
                let t = try table(value, "buckets")
                for name in t.keys {
                    let key = "buckets.\(name)"
                    guard name.range(of: "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", options: .regularExpression) != nil else {
                        throw fail(key, "is not a valid S3 bucket name (3–63 lowercase letters, digits, dots, hyphens)")
                    }
                    guard !["endpoints", "ping", "metrics", "requests"].contains(name) else {
                        throw fail(key, "is a path of the SageMaker API on the same listener; choose another bucket name")
                    }
                    let dir = try string(t[name]!, key)
                    guard !dir.isEmpty else { throw fail(key, "must name a folder") }
                    if !dir.hasPrefix("/") {
                        // Relative bucket folders are inside the root ("." is the root itself):
                        // checked like endpoint folders.
                        let isRoot = dir.split(separator: "/").allSatisfy { $0 == "." }
                        config.buckets[name] = isRoot ? "" : try directory(.string(dir), key)
                        continue
                    }
                    guard !dir.split(separator: "/").contains("..") else {
                        throw fail(key, "must not contain '..', got \"\(dir)\"")
                    }
                    config.buckets[name] = dir
                }
            }
            if let value = root["endpoints"] {
                let endpoints = try table(value, "endpoints")
                for name in endpoints.keys {
                    config.endpoints.append(try endpoint(name, endpoints[name]!))
                }
            }
            if config.endpoints.isEmpty { config.endpoints = [EndpointConfig(name: "default")] }
            try checkFolders(config.endpoints)
            try assignPorts(&config.endpoints)
            return config
        }

        func checkFolders(_ endpoints: [EndpointConfig]) throws(ConfigError) {
            var seen: [(String, String)] = []
            for e in endpoints {
                for (key, dir) in [("incoming", e.incomingDirectory), ("outputs", e.outputsDirectory), ("errors", e.errorsDirectory)] {
                    if dir.split(separator: "/").first == Substring(SpoolLayout.logsDirectory) {
                        throw fail("endpoints.\(e.name).\(key)", "folder \"\(dir)\" is inside the root's logs folder (the models' logs)")
                    }
                    for (otherKey, other) in seen where dir == other || dir.hasPrefix(other + "/") || other.hasPrefix(dir + "/") {
                        throw fail("endpoints.\(e.name).\(key)", "folder \"\(dir)\" overlaps \(otherKey) (\"\(other)\")")
                    }
                    seen.append(("endpoints.\(e.name).\(key)", dir))
                }
            }
        }

        func endpoint(_ name: String, _ value: TOMLValue) throws(ConfigError) -> EndpointConfig {
            let prefix = "endpoints.\(name)"
            guard name.range(of: "^[A-Za-z0-9](-*[A-Za-z0-9])*$", options: .regularExpression) != nil, name.count <= 63 else {
                throw fail(prefix, "endpoint names are 1–63 letters, digits and inner hyphens")
            }
            let t = try table(value, prefix)
            try checkKeys(t, allowed: [
                "model", "max_concurrent_invocations_per_instance", "instances", "invocation_timeout_seconds",
                "request_ttl_seconds", "max_payload_bytes", "chunk_bytes", "split", "max_attempts",
                "notifications", "incoming", "outputs", "errors", "split_max_bytes", "split_max_records",
            ], at: prefix)
            var model = ModelSpec.builtin("sha256")
            if let v = t["model"] { model = try self.model(v, "\(prefix).model") }
            var e = EndpointConfig(name: name, model: model)
            if let v = t["incoming"] { e.incomingDirectory = try directory(v, "\(prefix).incoming") }
            if let v = t["outputs"] { e.outputsDirectory = try directory(v, "\(prefix).outputs") }
            if let v = t["errors"] { e.errorsDirectory = try directory(v, "\(prefix).errors") }
            if let v = t["max_concurrent_invocations_per_instance"] {
                e.maxConcurrentInvocationsPerInstance = Int(try int(v, "\(prefix).max_concurrent_invocations_per_instance", 1...1000))
            }
            if let v = t["instances"] { e.instances = try instances(v, "\(prefix).instances", base: e.instances) }
            if let v = t["invocation_timeout_seconds"] {
                e.invocationTimeoutSeconds = Int(try int(v, "\(prefix).invocation_timeout_seconds", 1...3600))
            }
            if let v = t["request_ttl_seconds"] {
                e.requestTTLSeconds = Int(try int(v, "\(prefix).request_ttl_seconds", 60...21600))
            }
            if let v = t["max_payload_bytes"] { e.maxPayloadBytes = try int(v, "\(prefix).max_payload_bytes", 0...(1 << 40)) }
            if let v = t["chunk_bytes"] { e.chunkBytes = Int(try int(v, "\(prefix).chunk_bytes", 4096...(64 << 20))) }
            if let v = t["split"] {
                let s = try string(v, "\(prefix).split")
                guard let mode = SplitMode(rawValue: s) else { throw fail("\(prefix).split", "must be \"none\" or \"line\", got \"\(s)\"") }
                e.split = mode
            }
            if let v = t["split_max_bytes"] { e.splitMaxBytes = Int(try int(v, "\(prefix).split_max_bytes", 1024...(64 << 20))) }
            if let v = t["split_max_records"] { e.splitMaxRecords = Int(try int(v, "\(prefix).split_max_records", 1...1_000_000)) }
            if let v = t["max_attempts"] { e.maxAttempts = Int(try int(v, "\(prefix).max_attempts", 1...10)) }
            if let v = t["notifications"] { e.notifications = try notifications(v, "\(prefix).notifications") }
            return e
        }

        func model(_ value: TOMLValue, _ key: String) throws(ConfigError) -> ModelSpec {
            let t = try table(value, key)
            guard t.keys.count == 1, let kind = t.keys.first else {
                throw fail(key, "must name exactly one of builtin, command, container, url")
            }
            let v = t[kind]!
            switch kind {
            case "builtin":
                let name = try string(v, "\(key).builtin")
                guard ConfigLoader.builtinModels.contains(name) else {
                    throw fail("\(key).builtin", "unknown builtin model \"\(name)\" (known: \(ConfigLoader.builtinModels.sorted().joined(separator: ", ")))")
                }
                return .builtin(name)
            case "command":
                return .command(try argv(v, "\(key).command"))
            case "container":
                return .container(try container(v, "\(key).container"))
            case "url":
                let s = try string(v, "\(key).url")
                guard let url = URL(string: s), url.scheme == "http" || url.scheme == "https", url.host != nil else {
                    throw fail("\(key).url", "must be an http:// or https:// URL, got \"\(s)\"")
                }
                return .url(s)
            default:
                throw fail("\(key).\(kind)", "unknown model kind (known: builtin, command, container, url)")
            }
        }

        func container(_ value: TOMLValue, _ key: String) throws(ConfigError) -> ContainerSpec {
            let c = try table(value, key)
            try checkKeys(
                c, allowed: ["serve", "port", "env", "instance_env", "workdir", "startup_timeout_seconds", "health_check_seconds"],
                at: key)
            guard let serve = c["serve"] else { throw fail("\(key).serve", "is required") }
            var spec = ContainerSpec(serve: try argv(serve, "\(key).serve"))
            if let v = c["port"] { spec.port = Int(try int(v, "\(key).port", 1...65535)) }
            if let v = c["env"] { spec.env = try environment(v, "\(key).env") }
            if let v = c["instance_env"] { spec.instanceEnv = try environment(v, "\(key).instance_env") }
            if let v = c["workdir"] {
                let dir = try string(v, "\(key).workdir")
                guard !dir.isEmpty, !dir.contains("\0") else { throw fail("\(key).workdir", "must name a folder") }
                spec.workdir = dir
            }
            if let v = c["startup_timeout_seconds"] { spec.startupTimeoutSeconds = Int(try int(v, "\(key).startup_timeout_seconds", 1...3600)) }
            if let v = c["health_check_seconds"] { spec.healthCheckSeconds = Int(try int(v, "\(key).health_check_seconds", 1...3600)) }
            return spec
        }

        /// A table of environment variables: names of letters, digits and `_`; values strings,
        /// integers or booleans (written as TOML writes them). Spool's own variables are refused.
        func environment(_ value: TOMLValue, _ key: String) throws(ConfigError) -> [String: String] {
            var result: [String: String] = [:]
            let t = try table(value, key)
            for name in t.keys {
                let v = t[name]!
                guard name.range(of: "^[A-Za-z_][A-Za-z0-9_]*$", options: .regularExpression) != nil else {
                    throw fail("\(key).\(name)", "is not a valid environment variable name")
                }
                guard name != "SAGEMAKER_BIND_TO_PORT", name != "SAGEMAKER_SAFE_PORT_RANGE" else {
                    throw fail("\(key).\(name)", "is set by Spool for each instance")
                }
                switch v {
                case .string(let s):
                    guard !s.contains("\0") else { throw fail("\(key).\(name)", "must not contain NUL") }
                    result[name] = s
                case .integer(let i): result[name] = String(i)
                case .bool(let b): result[name] = String(b)
                default: throw fail("\(key).\(name)", "must be a string, integer or boolean, not a \(v.typeName)")
                }
            }
            return result
        }

        /// Container endpoints listen on `port … port + max - 1`: two that overlap are refused.
        /// Each instance of the root then gets a `SAGEMAKER_SAFE_PORT_RANGE` of its own, in blocks
        /// from 20000 up that stay clear of every endpoint's listening ports.
        func assignPorts(_ endpoints: inout [EndpointConfig]) throws(ConfigError) {
            var listening: [(name: String, ports: ClosedRange<Int>)] = []
            for e in endpoints {
                guard case .container(let spec) = e.model else { continue }
                let ports = spec.port...(spec.port + e.instances.max - 1)
                guard ports.upperBound <= 65535 else {
                    throw fail("endpoints.\(e.name).model.container.port", "port \(spec.port) + \(e.instances.max) instances passes 65535")
                }
                if let other = listening.first(where: { $0.ports.overlaps(ports) }) {
                    throw fail(
                        "endpoints.\(e.name).model.container.port",
                        "ports \(ports.lowerBound)–\(ports.upperBound) overlap endpoint \(other.name)'s \(other.ports.lowerBound)–\(other.ports.upperBound)")
                }
                listening.append((e.name, ports))
            }
            let slots = endpoints.reduce(0) { total, e in
                if case .container = e.model { total + e.instances.max } else { total }
            }
            guard slots > 0 else { return }
            let size = max(1, min(100, (65536 - 20_000) / (slots + listening.count)))
            var next = 20_000
            func block(_ count: Int) -> Int? {
                // The first run of `count` blocks from `next` that no listening range touches.
                while next + count * size - 1 <= 65535 {
                    let candidate = next...(next + count * size - 1)
                    if let hit = listening.first(where: { $0.ports.overlaps(candidate) }) {
                        next = hit.ports.upperBound + 1
                        continue
                    }
                    next += count * size
                    return candidate.lowerBound
                }
                return nil
            }
            for index in endpoints.indices {
                guard case .container(var spec) = endpoints[index].model else { continue }
                guard let base = block(endpoints[index].instances.max) else {
                    throw fail("endpoints.\(endpoints[index].name).model.container", "no free ports are left for SAGEMAKER_SAFE_PORT_RANGE")
                }
                spec.safePortBase = base
                spec.safePortSize = size
                endpoints[index].model = .container(spec)
            }
        }

        func instances(_ value: TOMLValue, _ key: String, base: InstanceConfig) throws(ConfigError) -> InstanceConfig {
            let t = try table(value, key)
            try checkKeys(t, allowed: ["min", "max", "idle_seconds"], at: key)
            var i = base
            if let v = t["max"] { i.max = Int(try int(v, "\(key).max", 1...64)) }
            if let v = t["min"] { i.min = Int(try int(v, "\(key).min", 0...64)) }
            if let v = t["idle_seconds"] { i.idleSeconds = Int(try int(v, "\(key).idle_seconds", 0...86400)) }
            guard i.min <= i.max else { throw fail("\(key).min", "must not exceed max (\(i.max)), got \(i.min)") }
            return i
        }

        func notifications(_ value: TOMLValue, _ key: String) throws(ConfigError) -> NotificationConfig {
            let t = try table(value, key)
            try checkKeys(t, allowed: ["on_success", "on_error", "webhook", "include_inference_response"], at: key)
            var n = NotificationConfig()
            if let v = t["on_success"] { n.onSuccess = try argv(v, "\(key).on_success") }
            if let v = t["on_error"] { n.onError = try argv(v, "\(key).on_error") }
            if let v = t["webhook"] {
                let s = try string(v, "\(key).webhook")
                guard let url = URL(string: s), url.scheme == "http" || url.scheme == "https", url.host != nil else {
                    throw fail("\(key).webhook", "must be an http:// or https:// URL, got \"\(s)\"")
                }
                n.webhook = s
            }
            if let v = t["include_inference_response"] {
                n.includeInferenceResponse = try bool(v, "\(key).include_inference_response")
            }
            return n
        }
    }
}
