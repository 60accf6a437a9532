import Foundation
import Testing
@testable import SpoolCore

@Suite struct TOMLParserTests {
    @Test func readsTablesDottedKeysAndValues() throws {
        let table = try TOMLParser.parse("""
            # comment
            top = "a # not a comment"
            [endpoints.default]
            model = { builtin = "wc" }   # trailing
            argv = ["python3", 'lit\\eral', "esc\\tape"]
            n = 1_000
            f = 1.5
            on = true
            multi = [
              1,
              2, # inner comment
            ]
            [endpoints."quoted name"]
            x.y = 3
            """)
        #expect(table["top"] == .string("a # not a comment"))
        guard case .table(let endpoints)? = table["endpoints"], case .table(let d)? = endpoints["default"] else {
            Issue.record("missing tables")
            return
        }
        #expect(d["argv"] == .array([.string("python3"), .string("lit\\eral"), .string("esc\tape")]))
        #expect(d["n"] == .integer(1000))
        #expect(d["f"] == .float(1.5))
        #expect(d["on"] == .bool(true))
        #expect(d["multi"] == .array([.integer(1), .integer(2)]))
        guard case .table(let model)? = d["model"] else { Issue.record("model not a table"); return }
        #expect(model["builtin"] == .string("wc"))
        guard case .table(let q)? = endpoints["quoted name"], case .table(let x)? = q["x"] else {
            Issue.record("quoted table missing")
            return
        }
        #expect(x["y"] == .integer(3))
    }

    @Test func reportsTheLineOfASyntaxError() {
        #expect(throws: TOMLError.self) { try TOMLParser.parse("a = 1\nb = \n") }
        do {
            _ = try TOMLParser.parse("a = 1\n\nb = nope\n")
        } catch {
            #expect(error.line == 3)
        }
    }

    @Test func refusesDuplicateKeys() {
        #expect(throws: TOMLError.self) { try TOMLParser.parse("a = 1\na = 2\n") }
        #expect(throws: TOMLError.self) { try TOMLParser.parse("[t]\n[t]\n") }
    }
}

@Suite struct ConfigLoaderTests {
    func parse(_ text: String) throws(ConfigError) -> SpoolConfig {
        try ConfigLoader.parse(text, file: "/r/spool.toml")
    }

    @Test func noEndpointsMeansOneDefaultSha256Endpoint() throws {
        let config = try parse("# nothing\n")
        #expect(config.endpoints.map(\.name) == ["default"])
        #expect(config.endpoints[0].model == .builtin("sha256"))
        #expect(config.endpoints[0].incomingDirectory == "incoming")
        #expect(config.endpoints[0].outputsDirectory == "outputs")
    }

    @Test func readsEveryEndpointKey() throws {
        let config = try parse("""
            [endpoints.default]
            model = { builtin = "echo" }
            [endpoints.cmd]
            model = { command = ["cat"] }
            max_concurrent_invocations_per_instance = 4
            instances = { min = 1, max = 3, idle_seconds = 10 }
            invocation_timeout_seconds = 60
            request_ttl_seconds = 120
            max_payload_bytes = 2048
            chunk_bytes = 65536
            split = "line"
            max_attempts = 3
            notifications = { on_success = ["true"], webhook = "http://127.0.0.1:9/hook", include_inference_response = true }
            """)
        let cmd = try #require(config.endpoint(named: "cmd"))
        #expect(cmd.model == .command(["cat"]))
        #expect(cmd.incomingDirectory == "cmd/incoming")
        #expect(cmd.maxConcurrentInvocationsPerInstance == 4)
        #expect(cmd.instances == InstanceConfig(min: 1, max: 3, idleSeconds: 10))
        #expect(cmd.concurrency == 12)
        #expect(cmd.invocationTimeoutSeconds == 60)
        #expect(cmd.requestTTLSeconds == 120)
        #expect(cmd.maxPayloadBytes == 2048)
        #expect(cmd.chunkBytes == 65536)
        #expect(cmd.split == .line)
        #expect(cmd.maxAttempts == 3)
        #expect(cmd.notifications.onSuccess == ["true"])
        #expect(cmd.notifications.includeInferenceResponse)
    }

    @Test func retentionDefaultsToFourteenDaysAndReadsAgesAndZero() throws {
        #expect(try parse("").retainFinished == 14 * 86400)
        #expect(try parse("").retainOutputs == false)
        #expect(try parse("[spool]\nretain_finished = \"36h\"\n").retainFinished == 36 * 3600)
        #expect(try parse("[spool]\nretain_finished = 0\n").retainFinished == nil)
        #expect(try parse("[spool]\nretain_finished = \"0\"\n").retainFinished == nil)
        #expect(try parse("[spool]\nretain_outputs = true\n").retainOutputs)
    }

    @Test(arguments: ["retain_finished = 7", "retain_finished = \"7\"", "retain_finished = \"-1d\"",
                      "retain_finished = \"0d\"", "retain_finished = true", "retain_outputs = \"yes\""])
    func badRetentionIsRefusedNamingTheKey(line: String) {
        do {
            _ = try parse("[spool]\n\(line)\n")
            Issue.record("accepted \(line)")
        } catch {
            #expect(error.key == "spool." + line.prefix { $0 != " " })
        }
    }

    @Test(arguments: [
        ("[endpoints.default]\noutputs = \"events.jsonl\"\n", "endpoints.default.outputs"),
        ("[endpoints.default]\nincoming = \"spool.toml\"\n", "endpoints.default.incoming"),
        ("[endpoints.default]\nerrors = \"spool.toml/x\"\n", "endpoints.default.errors"),
        ("[buckets]\ndata = \"../elsewhere\"\n", "buckets.data"),
        ("[buckets]\ndata = \"x/../../elsewhere\"\n", "buckets.data"),
        ("[buckets]\ndata = \".spool\"\n", "buckets.data"),
        ("[buckets]\ndata = \"/srv/../etc\"\n", "buckets.data"),
    ])
    func foldersThatBreakTheRootAreRefusedNamingTheKey(text: String, key: String) {
        do {
            _ = try parse(text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.key == key, "\(error)")
        }
    }

    @Test func relativeBucketsAreInsideTheRoot() throws {
        let config = try parse("[buckets]\nroot = \".\"\ndata = \"./data/in\"\nabs = \"/srv/data\"\n")
        #expect(config.buckets == ["root": "", "data": "data/in", "abs": "/srv/data"])
    }

    @Test func unknownKeyIsRefusedWithFileKeyAndReason() {
        do {
            _ = try parse("[endpoints.default]\nchunk_size = 5\n")
            Issue.record("an unknown key was accepted")
        } catch {
            #expect(error.file == "/r/spool.toml")
            #expect(error.key == "endpoints.default.chunk_size")
            #expect(error.reason.contains("unknown key"))
        }
    }

    @Test(arguments: [
        ("max_concurrent_invocations_per_instance = 0", "endpoints.default.max_concurrent_invocations_per_instance"),
        ("invocation_timeout_seconds = 3601", "endpoints.default.invocation_timeout_seconds"),
        ("request_ttl_seconds = 59", "endpoints.default.request_ttl_seconds"),
        ("max_attempts = 11", "endpoints.default.max_attempts"),
        ("instances = { max = 65 }", "endpoints.default.instances.max"),
        ("instances = { min = 3, max = 2 }", "endpoints.default.instances.min"),
        ("split = \"word\"", "endpoints.default.split"),
        ("model = { builtin = \"nope\" }", "endpoints.default.model.builtin"),
        ("model = { command = [] }", "endpoints.default.model.command"),
        ("chunk_bytes = \"big\"", "endpoints.default.chunk_bytes"),
        ("outputs = \"../elsewhere\"", "endpoints.default.outputs"),
        ("incoming = \".spool/x\"", "endpoints.default.incoming"),
    ])
    func outOfBoundsValuesAreRefused(line: String, key: String) {
        do {
            _ = try parse("[endpoints.default]\n\(line)\n")
            Issue.record("\(line) was accepted")
        } catch {
            #expect(error.key == key)
        }
    }

    @Test func overlappingFoldersAreRefused() {
        #expect(throws: ConfigError.self) {
            try parse("[endpoints.default]\n[endpoints.other]\nincoming = \"incoming/other\"\n")
        }
    }

    @Test func syntaxErrorNamesTheFileAndLine() {
        do {
            _ = try parse("[endpoints.default\n")
            Issue.record("accepted")
        } catch {
            #expect(error.description.hasPrefix("/r/spool.toml: line 1"))
        }
    }
}

@Suite struct RequestMetadataTests {
    @Test func readsSageMakerFieldNames() throws {
        let json = #"{"ContentType":"text/csv","Accept":"application/json","CustomAttributes":"a=1","InferenceId":"my-id","RequestTTLSeconds":600,"InvocationTimeoutSeconds":30}"#
        let m = try RequestMetadata.parseSidecar(Data(json.utf8)).get()
        #expect(m == RequestMetadata(contentType: "text/csv", accept: "application/json", customAttributes: "a=1",
                                     inferenceId: "my-id", requestTTLSeconds: 600, invocationTimeoutSeconds: 30))
    }

    @Test(arguments: [
        "not json", "[1]", #"{"Unknown":1}"#, #"{"RequestTTLSeconds":5}"#, #"{"InvocationTimeoutSeconds":"30"}"#,
        #"{"InvocationTimeoutSeconds":1.5}"#, #"{"ContentType":true}"#, #"{"InferenceId":""}"#, #"{"RequestTTLSeconds":true}"#,
    ])
    func invalidSidecarsAreRefusedWithAReason(json: String) {
        guard case .failure(let failure) = RequestMetadata.parseSidecar(Data(json.utf8)) else {
            Issue.record("accepted \(json)")
            return
        }
        #expect(failure.code == .invalidRequest)
        #expect(failure.reason.hasPrefix("Invalid metadata sidecar:"))
    }
}

@Suite struct RecordsTests {
    @Test func timestampsAreISO8601WithMilliseconds() {
        #expect(Timestamp.string(Date(timeIntervalSince1970: 1_595_015_812.271)) == "2020-07-17T19:56:52.271Z")
    }

    @Test func failedEventCarriesTheFailureFields() throws {
        let request = InferenceRequest(
            id: "abc", endpoint: "default", source: .drop, inputPath: "a.txt", claimToken: "t", payloadBytes: 3,
            ttlSeconds: 60, timeoutSeconds: 1, maxAttempts: 1, state: .failed, receivedAt: Date(timeIntervalSince1970: 0),
            finishedAt: Date(timeIntervalSince1970: 1), attempts: 1, outputLocation: "outputs/a.txt.out",
            failureLocation: "errors/a.txt.error.json", failureCode: .modelError, failureReason: "boom"
        )
        let event = NotificationEvent(request: request, inputLocation: "/r/incoming/a.txt", outputLocation: "/r/outputs/a.txt.out",
                                      failureLocation: "/r/errors/a.txt.error.json", eventTime: Date(timeIntervalSince1970: 1))
        let object = try #require(try JSONSerialization.jsonObject(with: event.jsonLine()) as? [String: Any])
        #expect(object["invocationStatus"] as? String == "Failed")
        #expect(object["failureCode"] as? String == "ModelError")
        #expect(object["failureLocation"] as? String == "/r/errors/a.txt.error.json")
        #expect(object["responseParameters"] == nil)
        #expect(object["eventVersion"] as? String == "1.0")
        #expect((object["requestParameters"] as? [String: Any])?["endpointName"] as? String == "default")
    }

    /// The event line is written by hand: byte for byte what `JSONEncoder` (sorted keys,
    /// slashes unescaped) writes, for every field present or absent and every kind of character.
    @Test(arguments: [RequestState.succeeded, .failed], [false, true])
    func eventLinesAreWhatJSONEncoderWrites(state: RequestState, withOptionals: Bool) throws {
        let awkward = (0..<0x20).map { String(UnicodeScalar(UInt8($0))) }.joined()
            + "\"\\/\u{7F} é ü 中文 \u{2028}\u{2029} 🙂 </script>"
        var request = InferenceRequest(
            id: "id-" + awkward, endpoint: "ep" + awkward, source: .http, inputPath: "in", claimToken: "t", payloadBytes: 3,
            ttlSeconds: 60, timeoutSeconds: 1, maxAttempts: 1, state: state, receivedAt: Date(timeIntervalSince1970: 0.5),
            finishedAt: Date(timeIntervalSince1970: 1), attempts: 1, outputLocation: "o", failureLocation: "e",
            failureCode: state == .failed ? .modelError : nil, failureReason: state == .failed ? "why " + awkward : nil)
        if withOptionals {
            request.contentType = "text/" + awkward
            request.accept = "application/" + awkward
        }
        var event = NotificationEvent(
            request: request, inputLocation: "/in/" + awkward, outputLocation: "/out/" + awkward,
            failureLocation: "/err/" + awkward, eventTime: Date(timeIntervalSince1970: 2))
        if withOptionals { event.responseBody = NotificationEvent.ResponseBody(content: "YWJj" + awkward) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let expected = try encoder.encode(event) + Data([0x0A])
        #expect(event.jsonLine() == expected, "\(String(decoding: event.jsonLine(), as: UTF8.self))\n\(String(decoding: expected, as: UTF8.self))")
        #expect(try JSONDecoder().decode(NotificationEvent.self, from: event.jsonLine()) == event)
    }
}

/// `model = { container = { … } }`: the settings a real model server needs, and the ports.
@Suite struct ContainerConfigTests {
    func parse(_ text: String) throws(ConfigError) -> SpoolConfig {
        try ConfigLoader.parse(text, file: "/r/spool.toml")
    }

    static func spec(_ config: SpoolConfig, _ name: String) -> ContainerSpec? {
        if case .container(let spec)? = config.endpoint(named: name)?.model { spec } else { nil }
    }

    @Test func readsEveryContainerSetting() throws {
        let config = try parse("""
            [endpoints.big]
            instances = { max = 2 }
            [endpoints.big.model.container]
            serve = ["python3", "serve.py"]
            port = 9000
            env = { MODEL_NAME = "digits", OMP_NUM_THREADS = 4, VERBOSE = true }
            instance_env = { CUDA_VISIBLE_DEVICES = "{instance}" }
            workdir = "models/big"
            startup_timeout_seconds = 1200
            health_check_seconds = 10
            """)
        let spec = try #require(Self.spec(config, "big"))
        #expect(spec.serve == ["python3", "serve.py"])
        #expect(spec.port == 9000)
        #expect(spec.env == ["MODEL_NAME": "digits", "OMP_NUM_THREADS": "4", "VERBOSE": "true"])
        #expect(spec.workdir == "models/big")
        #expect(spec.startupTimeoutSeconds == 1200 && spec.healthCheckSeconds == 10)
        let second = spec.environment(instance: 1)
        #expect(second["CUDA_VISIBLE_DEVICES"] == "1")
        #expect(second["SAGEMAKER_BIND_TO_PORT"] == "9001")
        #expect(second["MODEL_NAME"] == "digits")
        let defaults = try #require(Self.spec(try parse("[endpoints.s]\nmodel = { container = { serve = [\"s\"] } }\n"), "s"))
        #expect(defaults.port == 8080 && defaults.startupTimeoutSeconds == 600 && defaults.healthCheckSeconds == 30)
    }

    @Test func safePortRangesAreDistinctAcrossEndpointsAndInstancesAndClearOfListeningPorts() throws {
        let config = try parse("""
            [endpoints.a]
            instances = { max = 3 }
            model = { container = { serve = ["a"], port = 20000 } }
            [endpoints.b]
            instances = { max = 2 }
            model = { container = { serve = ["b"], port = 8080 } }
            [endpoints.c]
            model = { command = ["cat"] }
            """)
        var ranges: [ClosedRange<Int>] = []
        var listening: [ClosedRange<Int>] = []
        for (name, count) in [("a", 3), ("b", 2)] {
            let spec = try #require(Self.spec(config, name))
            listening.append(spec.port...(spec.port + count - 1))
            for i in 0..<count {
                let range = spec.safePortRange(instance: i)
                #expect(spec.environment(instance: i)["SAGEMAKER_SAFE_PORT_RANGE"] == "\(range.lowerBound)-\(range.upperBound)")
                ranges.append(range)
            }
        }
        for (i, range) in ranges.enumerated() {
            #expect(range.count >= 50 && range.upperBound <= 65535)
            #expect(!listening.contains { $0.overlaps(range) }, "\(range) is clear of the listening ports")
            for other in ranges[(i + 1)...] { #expect(!range.overlaps(other), "\(range) and \(other)") }
        }
    }

    @Test func overlappingListeningPortsAreRefused() {
        do {
            _ = try parse("""
                [endpoints.a]
                instances = { max = 4 }
                model = { container = { serve = ["a"], port = 8080 } }
                [endpoints.b]
                model = { container = { serve = ["b"], port = 8083 } }
                """)
            Issue.record("overlapping ports were accepted")
        } catch {
            #expect(error.key == "endpoints.b.model.container.port")
            #expect(error.reason.contains("8080–8083"), "\(error.reason)")
        }
    }

    @Test(arguments: [
        ("port = 0", "endpoints.e.model.container.port"),
        ("startup_timeout_seconds = 0", "endpoints.e.model.container.startup_timeout_seconds"),
        ("startup_timeout_seconds = 3601", "endpoints.e.model.container.startup_timeout_seconds"),
        ("health_check_seconds = 0", "endpoints.e.model.container.health_check_seconds"),
        ("health_check_seconds = \"30\"", "endpoints.e.model.container.health_check_seconds"),
        ("env = { \"BAD-NAME\" = \"x\" }", "endpoints.e.model.container.env.BAD-NAME"),
        ("env = { SAGEMAKER_BIND_TO_PORT = \"1\" }", "endpoints.e.model.container.env.SAGEMAKER_BIND_TO_PORT"),
        ("env = { LIST = [1] }", "endpoints.e.model.container.env.LIST"),
        ("instance_env = \"x\"", "endpoints.e.model.container.instance_env"),
        ("workdir = 3", "endpoints.e.model.container.workdir"),
        ("gpus = 1", "endpoints.e.model.container.gpus"),
    ])
    func badSettingsAreRefusedNamingTheKey(line: String, key: String) {
        do {
            _ = try parse("[endpoints.e.model.container]\nserve = [\"s\"]\n\(line)\n")
            Issue.record("\(line) was accepted")
        } catch {
            #expect(error.key == key, "\(error)")
        }
    }

    @Test func theLogsFolderIsNotADropFolder() {
        do {
            _ = try parse("[endpoints.default]\nincoming = \"logs/in\"\n")
            Issue.record("a drop folder under logs/ was accepted")
        } catch {
            #expect(error.key == "endpoints.default.incoming")
        }
        #expect(throws: ConfigError.self) { try parse("[endpoints.logs]\n") }
    }
}

/// `[http]` AWS credentials.
@Suite struct CredentialsConfigTests {
    func parse(_ text: String) throws(ConfigError) -> SpoolConfig {
        try ConfigLoader.parse(text, file: "/r/spool.toml")
    }

    @Test func credentialsAreReadTogether() throws {
        let config = try parse("[http]\naccess_key_id = \"AKIDTEST\"\nsecret_access_key = \"0123456789abcdef\"\n")
        #expect(config.http.credentials == AWSCredentials(accessKeyID: "AKIDTEST", secretAccessKey: "0123456789abcdef"))
        #expect(try parse("").http.credentials == nil)
    }

    @Test(arguments: [
        ("access_key_id = \"AKIDTEST\"", "http.secret_access_key"),
        ("secret_access_key = \"0123456789abcdef\"", "http.access_key_id"),
        ("access_key_id = \"AKID TEST\"\nsecret_access_key = \"0123456789abcdef\"", "http.access_key_id"),
        ("access_key_id = \"AKIDTEST\"\nsecret_access_key = \"short\"", "http.secret_access_key"),
    ])
    func incompleteOrWeakCredentialsAreRefused(lines: String, key: String) {
        do {
            _ = try parse("[http]\n\(lines)\n")
            Issue.record("accepted: \(lines)")
        } catch {
            #expect(error.key == key, "\(error)")
        }
    }

    @Test func bucketNamesOfTheSageMakerAPIAreRefused() {
        do {
            _ = try parse("[buckets]\nping = \".\"\n")
            Issue.record("a bucket named ping was accepted")
        } catch {
            #expect(error.key == "buckets.ping")
        }
    }
}
