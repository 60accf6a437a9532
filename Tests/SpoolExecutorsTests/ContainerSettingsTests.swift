import Foundation
import SpoolCore
import SpoolTestSupport
import Testing
@testable import SpoolExecutors

#if canImport(Glibc)
import Glibc
#endif

/// The `container` settings against the real example server: each instance's environment and
/// working folder, the start-up timeout, health checks that replace a server gone silent, and
/// its log file.
@Suite struct ContainerSettingsTests {
    typealias Support = ContainerTestSupport

    static func executor(
        _ spec: ContainerSpec, min: Int = 0, max: Int = 1, timings: ContainerTimings = Support.fastTimings(),
        workdir: String? = nil, logDirectory: String? = nil
    ) -> ContainerExecutor {
        var endpoint = EndpointConfig(name: "default")
        endpoint.instances = InstanceConfig(min: min, max: max)
        endpoint.model = .container(spec)
        return ContainerExecutor(spec: spec, endpoint: endpoint, timings: timings, workdir: workdir, logDirectory: logDirectory)
    }

    static func temporaryFolder() throws -> String {
        try makeTemporaryDirectory(prefix: "spool-container")
    }

    @Test func everyInstanceGetsItsEnvironmentPortsAndFolder() async throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var spec = ContainerSpec(serve: Support.serve("env"), port: try Support.freePorts(2))
        spec.env = ["TEST_ALL": "everyone"]
        spec.instanceEnv = ["CUDA_VISIBLE_DEVICES": "{instance}", "TEST_NAME": "gpu-{instance}"]
        spec.safePortBase = 30_000
        spec.safePortSize = 50
        let executor = Self.executor(spec, min: 2, max: 2, workdir: folder)
        defer { Task { await executor.shutdown() } }
        let scaler = try await Support.start(executor, context: Support.context())
        defer { scaler.cancel() }
        #expect(await Support.eventually(within: .seconds(60)) { await executor.pool.readyIndices() == [0, 1] }, "both instances ready")

        // Two requests at once, one slot each: one per instance.
        async let first = Self.environment(of: executor)
        async let second = Self.environment(of: executor)
        let seen = try await [first, second].sorted { ($0["CUDA_VISIBLE_DEVICES"] as? String ?? "") < ($1["CUDA_VISIBLE_DEVICES"] as? String ?? "") }
        #expect(seen.map { $0["CUDA_VISIBLE_DEVICES"] as? String } == ["0", "1"])
        #expect(seen.map { $0["TEST_NAME"] as? String } == ["gpu-0", "gpu-1"])
        #expect(seen.allSatisfy { $0["TEST_ALL"] as? String == "everyone" })
        #expect(seen.map { $0["SAGEMAKER_BIND_TO_PORT"] as? String } == ["\(spec.port)", "\(spec.port + 1)"])
        #expect(seen.map { $0["SAGEMAKER_SAFE_PORT_RANGE"] as? String } == ["30000-30049", "30050-30099"])
        #expect(seen.allSatisfy { ($0["cwd"] as? String).map { URL(fileURLWithPath: $0).resolvingSymlinksInPath().path }
            == URL(fileURLWithPath: folder).resolvingSymlinksInPath().path })
    }

    static func environment(of executor: ContainerExecutor) async throws -> [String: Any] {
        let fixture = try InvocationFixture(payload: Array("x".utf8))
        let (result, _) = try await fixture.run(metadata: executor, customAttributes: "mode=env,seconds=1")
        #expect(result == .succeeded)
        return try #require(try JSONSerialization.jsonObject(with: Data(fixture.output)) as? [String: Any])
    }

    @Test func startupTimeoutBoundsTheWaitForPing() async throws {
        // A server that takes a minute to listen is too slow for a 1-second timeout; one that takes
        // 3 s is fine for 20. (Margins of a minute and 17 s: a busy machine may hold the
        // executor's tasks back for seconds, in either direction.)
        var spec = ContainerSpec(serve: Support.serve("echo"), port: try Support.freePorts(1))
        spec.env = ["SERVE_STARTUP_DELAY": "60"]
        spec.startupTimeoutSeconds = 1
        var timings = ContainerTimings(spec: spec)
        timings.pingInterval = .milliseconds(50)
        timings.terminationGrace = .seconds(1)
        #expect(timings.startupTimeout == .seconds(1))
        let impatient = Self.executor(spec, timings: timings)
        let fixture = try InvocationFixture(payload: Array("x".utf8))
        let (result, _) = try await fixture.run(impatient)
        await impatient.shutdown()
        let failure = try #require(result.failure)
        #expect(failure.reason.contains("did not answer GET /ping") && failure.reason.contains("1.0 seconds"), "\(failure.reason)")

        spec.env = ["SERVE_STARTUP_DELAY": "3"]
        spec.startupTimeoutSeconds = 20
        timings = ContainerTimings(spec: spec)
        timings.pingInterval = .milliseconds(50)
        let patient = Self.executor(spec, timings: timings)
        defer { Task { await patient.shutdown() } }
        #expect(try await fixture.run(patient).0 == .succeeded)
        #expect(ContainerTimings().startupTimeout == .seconds(600), "ten minutes by default: large models load slowly")
    }

    @Test func aServerThatStopsAnsweringPingIsReplacedAndItsRequestRetryable() async throws {
        let spec = ContainerSpec(serve: Support.serve("echo"), port: try Support.freePorts(1))
        var timings = Support.fastTimings(grace: .seconds(1))
        timings.healthCheck = .seconds(1)
        let executor = Self.executor(spec, min: 1, max: 1, timings: timings)
        defer { Task { await executor.shutdown() } }
        let scaler = try await Support.start(executor, context: Support.context())
        defer { scaler.cancel() }
        let warm = try InvocationFixture(payload: Array("warm".utf8))
        #expect(try await warm.run(executor).0 == .succeeded, "the server is up")
        let silent = try #require(await executor.pool.processIDs().first)

        // A request is being served when the server stops answering (SIGSTOP: alive, silent).
        let fixture = try InvocationFixture(payload: Array("x".utf8))
        async let running = fixture.run(metadata: executor, customAttributes: "mode=slow,seconds=60")
        #expect(await fixture.waitUntilRead(atLeast: 1), "the request's body is on its way to the server")
        #expect(kill(-silent, SIGSTOP) == 0)
        let (result, _) = try await running
        let failure = try #require(result.failure)
        #expect(failure.retryable, "retried within max_attempts")
        #expect(failure.reason.contains("stopped answering GET /ping"), "\(failure.reason)")
        #expect(await Support.eventually(within: .seconds(10)) { !Support.isAlive(silent) }, "the silent server is killed")
        #expect(await Support.eventually(within: .seconds(30)) {
            let pids = await executor.pool.processIDs()
            return pids.count == 1 && pids[0] != silent
        }, "and replaced")
        let next = try InvocationFixture(payload: Array("again".utf8))
        #expect(try await next.run(executor).0 == .succeeded)
        #expect(next.output == Array("again".utf8))
    }

    @Test func theServersOutputGoesToItsInstanceLog() async throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let spec = ContainerSpec(serve: Support.serve("echo"), port: try Support.freePorts(1))
        let executor = Self.executor(spec, logDirectory: folder)
        let fixture = try InvocationFixture(payload: Array("x".utf8))
        #expect(try await fixture.run(executor).0 == .succeeded)
        await executor.shutdown()
        let log = folder + "/default.0.log"
        #expect(await Support.eventually {
            (try? String(contentsOfFile: log, encoding: .utf8))?.contains("serve.py: listening on 127.0.0.1:\(spec.port)") == true
        })
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(text.contains("POST /invocations"), "its request log too (stderr)")
        for line in text.split(separator: "\n") {
            #expect(line.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "#, options: .regularExpression) != nil, "\(line)")
        }
    }
}

/// `ModelLog` on its own: lines, rotation, limits.
@Suite struct ModelLogTests {
    static func folder() throws -> String { try ContainerSettingsTests.temporaryFolder() }

    @Test func linesAcrossChunksAreWholeStampedAndTagged() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let log = ModelLog(path: folder + "/e.log")
        var lines = LogLineSplitter()
        for chunk in ["first li", "ne\r\nsecond\nthi", "rd"] {
            Array(chunk.utf8).withUnsafeBytes { log.record($0, splitter: &lines, tag: "id-1") }
        }
        log.write(lines: lines.rest(), tag: "id-1")
        log.flush()
        let text = try String(contentsOfFile: folder + "/e.log", encoding: .utf8)
        let bodies = text.split(separator: "\n").map { $0.split(separator: " ", maxSplits: 1).last.map(String.init) ?? "" }
        #expect(bodies == ["[id-1] first line", "[id-1] second", "[id-1] third"])
    }

    @Test func longLinesAreCut() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let log = ModelLog(path: folder + "/e.log", bytesPerSecond: 100 << 20)
        var lines = LogLineSplitter()
        let long = [UInt8](repeating: UInt8(ascii: "a"), count: ModelLog.lineLimit * 2 + 10) + [10]
        long.withUnsafeBytes { log.record($0, splitter: &lines) }
        log.flush()
        let text = try String(contentsOfFile: folder + "/e.log", encoding: .utf8)
        #expect(text.split(separator: "\n").map { $0.count - 25 } == [ModelLog.lineLimit, ModelLog.lineLimit, 10])
    }

    @Test func filesRotateAndOnlyThreeAreKept() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/e.0.log"
        let log = ModelLog(path: path, maxBytes: 4096, bytesPerSecond: 100 << 20)
        for i in 0..<500 {
            log.write(lines: [Substring("line \(i) " + String(repeating: "x", count: 40))])
        }
        log.flush()
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        #expect(names == ["e.0.log", "e.0.log.1", "e.0.log.2"])
        for name in names {
            let size = try FileManager.default.attributesOfItem(atPath: folder + "/" + name)[.size] as? Int ?? 0
            #expect(size > 0 && size <= 4096, "\(name): \(size)")
        }
        #expect(try String(contentsOfFile: path, encoding: .utf8).contains("line 499 "), "the newest lines are in the current file")
        #expect(ModelLog.files(directory: folder, endpoint: "e") == [path])
    }

    @Test func aFloodIsDroppedAndSaidSo() async throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let log = ModelLog(path: folder + "/e.log", bytesPerSecond: 64 * 1024)
        var lines = LogLineSplitter()
        let chunk = Array(String(repeating: "flood\n", count: 10_000).utf8)
        for _ in 0..<100 {  // 6 MB at once: far past four seconds' worth of 64 KiB/s
            chunk.withUnsafeBytes { log.record($0, splitter: &lines) }
        }
        log.flush()
        let size = try FileManager.default.attributesOfItem(atPath: folder + "/e.log")[.size] as? Int ?? 0
        #expect(size < 1024 * 1024, "about four seconds' worth was logged, not 30 MB: \(size)")
        // The model then goes quiet: the line about what was dropped comes on its own (a second later).
        #expect(await ContainerTestSupport.eventually(within: .seconds(10)) {
            log.flush()
            return (try? String(contentsOfFile: folder + "/e.log", encoding: .utf8))?.contains("bytes of output were not logged") == true
        })
    }
}

/// `ModelLogReader`: what `spool logs` prints.
@Suite struct ModelLogReaderTests {
    @Test func filesMergeByTimeRotatedFirstAndSinceFilters() throws {
        let folder = try ContainerSettingsTests.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        func write(_ name: String, _ lines: [String]) throws {
            try Data(lines.map { $0 + "\n" }.joined().utf8).write(to: URL(fileURLWithPath: folder + "/" + name))
        }
        try write("e.0.log.1", ["2026-11-30T10:00:00.000Z zero-old"])
        try write("e.0.log", ["2026-11-30T10:00:02.000Z zero-new"])
        try write("e.1.log", ["2026-11-30T10:00:01.000Z one"])
        try write("e.log", ["2026-11-30T10:00:03.000Z [id] command"])
        try write("other.0.log", ["2026-11-30T10:00:00.500Z not this endpoint"])
        let reader = ModelLogReader(directory: folder, endpoint: "e")
        let text = reader.history().map { String(decoding: $0, as: UTF8.self) }
        #expect(text.map { $0.split(separator: " ").last.map(String.init) } == ["zero-old", "one", "zero-new", "command"])
        #expect(reader.newLines().isEmpty)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: folder + "/e.1.log"))
        handle.seekToEndOfFile()
        handle.write(Data("2026-11-30T10:00:04.000Z later\n".utf8))
        try handle.close()
        #expect(reader.newLines().map { String(decoding: $0, as: UTF8.self) } == ["2026-11-30T10:00:04.000Z later"])
        let recent = ModelLogReader(directory: folder, endpoint: "e", since: "2026-11-30T10:00:02.000Z")
        #expect(recent.history().count == 3, "zero-new, command, later")
    }
}
