import Foundation
import SpoolCore
import SpoolTestSupport
import Testing
@testable import SpoolExecutors

#if canImport(Glibc)
import Glibc
#endif

/// Helpers for the container and url executor tests: the example server, free ports, fast
/// timings, and looks at the process table.
enum ContainerTestSupport {
    /// `examples/container/serve.py` of this checkout.
    static let serveScript = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("examples/container/serve.py").path

    /// The serve argv of the example server in `mode`.
    static func serve(_ mode: String = "echo") -> [String] {
        ["python3", serveScript, mode]
    }

    /// One echo server for the conformance suite (one process instead of one per size). It is
    /// never shut down: `--exit-with-parent` makes it exit with the test process.
    static let sharedEcho: ContainerExecutor = try! executor(
        serve: ["python3", serveScript, "echo", "--exit-with-parent"], max: 1, slots: 4
    )

    /// Timings short enough for tests; the start-up timeout allows for a busy machine.
    static func fastTimings(grace: Duration = .seconds(2)) -> ContainerTimings {
        var timings = ContainerTimings()
        timings.startupTimeout = .seconds(30)
        timings.pingInterval = .milliseconds(50)
        timings.scaleInterval = .milliseconds(100)
        timings.terminationGrace = grace
        return timings
    }

    /// Starts `executor` as the daemon does: `start`, then its upkeep (the scaler's rounds) on a
    /// task of its own, which the caller cancels.
    static func start(_ executor: ContainerExecutor, context: ExecutorContext = context()) async throws -> Task<Void, Never> {
        try await executor.start(context: context)
        return Task { await executor.maintain(context: context) }
    }

    /// A container executor of the example server on free ports.
    static func executor(
        mode: String = "echo", serve: [String]? = nil, min: Int = 0, max: Int = 1, idleSeconds: Int = 300,
        slots: Int = 1, grace: Duration = .seconds(2), clock: ManualClock? = nil
    ) throws -> ContainerExecutor {
        var endpoint = EndpointConfig(name: "default")
        endpoint.instances = InstanceConfig(min: min, max: max, idleSeconds: idleSeconds)
        endpoint.maxConcurrentInvocationsPerInstance = slots
        var timings = fastTimings(grace: grace)
        if let clock { timings.clock = clock.spoolClock() }
        return ContainerExecutor(
            spec: ContainerSpec(serve: serve ?? Self.serve(mode), port: try freePorts(max)), endpoint: endpoint,
            timings: timings
        )
    }

    /// The first of `count` consecutive TCP ports for a server, given to no other test.
    static func freePorts(_ count: Int) throws -> Int {
        try TestPorts.reserve(count)
    }

    /// Whether `pid` names a process that is not a zombie (from `/proc/<pid>/stat`).
    static func isAlive(_ pid: pid_t) -> Bool {
        guard let status = ProcessGroup.status(of: pid) else { return false }
        return status.state != "Z" && status.state != "X"
    }

    /// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
    static func eventually(within timeout: Duration = .seconds(10), _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return await condition()
    }

    /// A context whose backlog is always `backlog`.
    static func context(backlog: Int = 0) -> ExecutorContext {
        ExecutorContext(endpoint: EndpointConfig(name: "default")) { backlog }
    }
}

extension InvocationFixture {
    /// Runs `executor` with the request's metadata set.
    func run(
        metadata executor: any ModelExecutor, contentType: String? = nil, accept: String? = nil, customAttributes: String? = nil
    ) async throws -> (AttemptResult, Int64) {
        try await run(MetadataExecutor(base: executor, contentType: contentType, accept: accept, customAttributes: customAttributes))
    }
}

/// Sets a request's metadata before handing it to another executor.
struct MetadataExecutor: ModelExecutor {
    var base: any ModelExecutor
    var contentType: String?
    var accept: String?
    var customAttributes: String?

    func invoke(_ invocation: Invocation) async -> AttemptResult {
        var invocation = invocation
        invocation.request.contentType = contentType
        invocation.request.accept = accept
        invocation.request.customAttributes = customAttributes
        return await base.invoke(invocation)
    }
}

extension AttemptResult {
    var failure: Failure? {
        if case .failed(let failure) = self { failure } else { nil }
    }
}
