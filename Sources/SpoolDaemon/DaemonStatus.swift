import Foundation
import ServiceLifecycle
import SpoolCore

#if canImport(Glibc)
import Glibc
import SpoolSystem
#endif

/// What a running `spool serve` or `spool drain` tells the other processes of its root:
/// `.spool/daemons/<owner>.json`, rewritten every few seconds, removed when it stops. A file
/// whose owner is dead (its owner lock is free) is ignored and removed by the next reader.
///
/// `spool stats`, run as its own process, reads the instances running from these files.
public struct DaemonStatus: Sendable, Codable, Equatable {
    public static let directory = ".spool/daemons"

    public var owner: String
    public var pid: Int32
    public var updatedTime: String
    /// Model instances running, by endpoint (see `instances(of:)`).
    public var instances: [String: Int]

    public init(owner: String, pid: Int32 = getpid(), updatedAt: Date = Date(), instances: [String: Int]) {
        self.owner = owner
        self.pid = pid
        updatedTime = Timestamp.string(updatedAt)
        self.instances = instances
    }

    static func path(layout: SpoolLayout, owner: String) -> String {
        layout.path("\(directory)/\(owner).json")
    }

    /// The instances an engine runs, by endpoint: for `container` endpoints the model servers
    /// up now (0 when scaled to zero); for `builtin`, `command` and `url` endpoints, whose
    /// capacity is there whenever the process is, `instances.max` (or more, if the executor
    /// reports more).
    public static func instances(of engine: SpoolEngine) -> [String: Int] {
        let live = engine.instancesRunning
        var result: [String: Int] = [:]
        for endpoint in engine.config.endpoints {
            let running = live[endpoint.name] ?? 0
            if case .container = endpoint.model {
                result[endpoint.name] = running
            } else {
                result[endpoint.name] = max(running, endpoint.instances.max)
            }
        }
        return result
    }

    /// Writes (atomically) the engine's status file.
    static func write(for engine: SpoolEngine) {
        let status = DaemonStatus(owner: engine.owner, instances: instances(of: engine))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do {
            try SystemCalls.makeDirectories(engine.layout.path(directory))
            try SystemCalls.writeAtomically(
                try encoder.encode(status), to: path(layout: engine.layout, owner: engine.owner),
                temporaryDirectory: engine.layout.path(SpoolLayout.partialDirectory))
        } catch {
            engine.logger.warning("could not write the daemon status file", metadata: ["spool.error": "\(error)"])
        }
    }

    static func remove(for engine: SpoolEngine) {
        try? SystemCalls.unlinkIfPresent(path(layout: engine.layout, owner: engine.owner))
    }

    /// Whether a daemon or drain other than `owner` runs on the root now: one with a status file
    /// whose lock is held. (Processes that only queue, `spool invoke`, have no status file: they
    /// neither publish nor recover.) Reads only; never removes a file.
    static func othersRunning(layout: SpoolLayout, except owner: String) -> Bool {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: layout.path(directory))) ?? []
        let owners = names.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.filter { $0 != owner }
        return OwnerLock.anyHeld(layout: layout, owners: owners)
    }

    /// The statuses of the live processes of a root, except `excluding` (a caller's own owner).
    public static func live(layout: SpoolLayout, excluding: String? = nil) -> [DaemonStatus] {
        let folder = layout.path(directory)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return [] }
        var result: [DaemonStatus] = []
        for name in names where name.hasSuffix(".json") {
            let owner = String(name.dropLast(5))
            if owner == excluding { continue }
            guard OwnerLock.isAlive(layout: layout, owner: owner) else {
                try? SystemCalls.unlinkIfPresent("\(folder)/\(name)")
                continue
            }
            if let data = FileManager.default.contents(atPath: "\(folder)/\(name)"),
               let status = try? JSONDecoder().decode(DaemonStatus.self, from: data) {
                result.append(status)
            }
        }
        return result
    }
}

/// Keeps this process's status file current (every `interval`) until shutdown.
struct DaemonStatusService: Service {
    let engine: SpoolEngine
    let interval: Duration

    func run() async throws {
        await engine.clock.rounds(every: interval, startingNow: true) { DaemonStatus.write(for: engine) }
    }
}
