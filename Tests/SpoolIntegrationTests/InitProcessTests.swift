import Foundation
import Glibc
import Testing

extension IntegrationTests {
    @Suite(.serialized) struct AsPIDOne {
        /// The processes whose parent is `parent`, with their state letters (from `/proc`).
        static func children(of parent: pid_t) -> [(pid: pid_t, state: Character)] {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return entries.compactMap { name -> (pid_t, Character)? in
                guard let pid = pid_t(name), let stat = Files.text("/proc/\(pid)/stat"),
                      let paren = stat.lastIndex(of: ")") else { return nil }
                let fields = stat[stat.index(paren, offsetBy: 2)...].split(separator: " ")
                guard fields.count > 2, let ppid = pid_t(fields[1]), ppid == parent, let state = fields[0].first else { return nil }
                return (pid, state)
            }
        }

        @Test("as PID 1 (a container's first process), serve reaps the orphans its models leave, forwards SIGTERM and exits 0",
              .timeLimit(.minutes(2)))
        func reapsOrphansAsPIDOne() async throws {
            // Each request leaves a helper behind that outlives the model; the model's group is
            // killed at its end, and the dead helper is reparented to PID 1.
            let root = try SpoolRoot(config: """
                [endpoints.default]
                model = { command = ["sh", "-c", "(sleep 30) & cat"] }
                """)
            let daemon = try root.serve(launcher: ["/usr/bin/unshare", "--pid", "--fork", "--kill-child", "--"])
            try await root.warmUp()
            for i in 0..<10 { try Files.write(root.incoming + "/job-\(i).txt", "job \(i)") }
            try await root.waitUntil("every output") { (0..<10).allSatisfy { Files.exists(root.output("job-\($0).txt")) } }
            // PID 1 of the new namespace is the child of `unshare`.
            let pidOne = try #require(Self.children(of: daemon.pid).first?.pid, "unshare's child")
            try await root.waitUntil("no zombie left under PID 1", timeout: .seconds(20)) {
                Self.children(of: pidOne).allSatisfy { $0.state != "Z" }
            }
            // SIGTERM to PID 1 reaches the daemon, which stops cleanly; its status comes through.
            kill(pidOne, SIGTERM)
            #expect(try await daemon.waitForExit() == 0)
        }
    }
}
