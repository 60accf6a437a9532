import Foundation
import Glibc
import Testing

extension IntegrationTests {
    /// Anyone who can drop files can make folders Spool cannot read or watch; that must never
    /// stop the daemon (systemd would restart it in a loop).
    @Suite(.serialized) struct UnwatchableFolders {
        /// Makes `levels` nested folders of 200-character names below `folder` (deeper than
        /// PATH_MAX in all), working down with descriptors since no path may name the bottom.
        static func makeDeepTree(under folder: String, levels: Int) throws {
            var fd = open(folder, O_RDONLY | O_DIRECTORY)
            guard fd >= 0 else { throw HarnessError("open \(folder): errno \(errno)") }
            let name = String(repeating: "d", count: 200)
            for _ in 0..<levels {
                guard mkdirat(fd, name, 0o755) == 0 else { throw HarnessError("mkdirat: errno \(errno)") }
                let next = openat(fd, name, O_RDONLY | O_DIRECTORY)
                close(fd)
                guard next >= 0 else { throw HarnessError("openat: errno \(errno)") }
                fd = next
            }
            let file = openat(fd, "bottom.txt", O_WRONLY | O_CREAT, 0o644)
            if file >= 0 { close(file) }
            close(fd)
        }

        /// Removes a tree deeper than PATH_MAX (`rm -r` copes; FileManager does not).
        static func removeDeepTree(_ folder: String) {
            let rm = Process()
            rm.executableURL = URL(fileURLWithPath: "/bin/rm")
            rm.arguments = ["-rf", folder]
            try? rm.run()
            rm.waitUntilExit()
        }

        @Test("a tree deeper than PATH_MAX in incoming/ at start: serve logs it and keeps running", .timeLimit(.minutes(2)))
        func tooDeepAtStart() async throws {
            let root = try SpoolRoot(config: config(model: "echo"))
            try Self.makeDeepTree(under: root.incoming, levels: 25)
            defer { Self.removeDeepTree(root.incoming + "/" + String(repeating: "d", count: 200)) }
            let daemon = try root.serve()
            try await root.warmUp()
            try Files.write(root.incoming + "/after.txt", "after")
            try await root.waitUntil("the output of a later drop") { Files.exists(root.output("after.txt")) }
            #expect(daemon.isRunning)
            #expect(daemon.stderr.contains("File name too long"), "the log names the problem:\n\(daemon.stderr)")
        }

        @Test("a sub-folder the daemon's user cannot read: serve logs it, keeps running, and scans it once it is readable",
              .timeLimit(.minutes(2)))
        func unreadableAtStartReadableLater() async throws {
            let nobody: UInt32 = 65534
            let root = try SpoolRoot(config: config(model: "echo"))
            let locked = root.incoming + "/private"
            try Files.makeDirectories(root.path + "/outputs")
            try Files.makeDirectories(root.path + "/errors")
            try Files.makeDirectories(locked)
            try Files.write(locked + "/inside.txt", "inside")
            // The folder stays root's, mode 700: the daemon cannot read or watch it.
            guard chmod(locked, 0o700) == 0 else { throw HarnessError("chmod: errno \(errno)") }
            let daemon = try root.serve(asUser: nobody, keeping: [locked])
            try await root.waitUntil("the daemon running") {
                daemon.stderr.contains("spool is running") || !daemon.isRunning
            }
            try await root.warmUp()
            #expect(daemon.isRunning, "\(daemon.stderr)")

            // When the folder becomes readable (and writable: claiming moves the file out of it)
            guard chown(locked, nobody, nobody) == 0, chown(locked + "/inside.txt", nobody, nobody) == 0 else {
                throw HarnessError("chown: errno \(errno)")
            }
            try await root.waitUntil("the file in the folder processed", timeout: .seconds(30)) {
                Files.exists(root.output("private/inside.txt"))
            }
            #expect(Files.text(root.output("private/inside.txt")) == "inside")
            #expect(daemon.stderr.contains("private"), "the log names the folder:\n\(daemon.stderr)")
        }
    }
}
