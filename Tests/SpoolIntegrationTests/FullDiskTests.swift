import Foundation
import Glibc
import Testing

extension IntegrationTests {
    @Suite(.serialized) struct FullDisk {
        /// Fills the filesystem holding `path` with one file, until it refuses another byte.
        static func fill(_ path: String) throws {
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            guard fd >= 0 else { throw HarnessError("open \(path): errno \(errno)") }
            defer { close(fd) }
            let chunk = [UInt8](repeating: 0x66, count: 64 * 1024)
            var size = chunk.count
            while size > 0 {
                if write(fd, chunk, size) < 0 {
                    guard errno == ENOSPC else { throw HarnessError("write: errno \(errno)") }
                    size /= 2
                }
            }
        }

        @Test("a full disk: every dropped file ends with an output or a marker and an event once space returns; none stuck, none lost",
              .timeLimit(.minutes(3)))
        func fullDiskLosesNothing() async throws {
            let root = try SpoolRoot()
            // The root on a small filesystem of its own.
            try #require(mount("tmpfs", root.path, "tmpfs", 0, "size=24m") == 0, "mounting a tmpfs needs root: errno \(errno)")
            defer { _ = umount2(root.path, Int32(MNT_DETACH)) }
            try Files.write(root.path + "/spool.toml", config(model: "echo"))
            try Files.makeDirectories(root.incoming)
            let staging = root.path + "/staging"
            try Files.makeDirectories(staging)
            let count = 300
            let names = (0..<count).map { String(format: "f%03d.txt", $0) }
            for (i, name) in names.enumerated() { try Files.write(staging + "/" + name, payload(i, bytes: 2048, tag: "disk")) }
            let daemon = try root.serve()
            try await root.warmUp()

            // When the disk is full and the files arrive
            try Self.fill(root.path + "/filler")
            for name in names { try Files.rename(staging + "/" + name, root.incoming + "/" + name) }
            try await root.waitUntil("the daemon to hit the full disk and try again", timeout: .seconds(30)) {
                daemon.stderr.contains("trying again")
            }
            #expect(daemon.isRunning)

            // Then once space returns, every request finishes, visibly
            try FileManager.default.removeItem(atPath: root.path + "/filler")
            try await root.waitUntil("an outcome for every file", timeout: .seconds(90)) {
                names.allSatisfy { Files.exists(root.output($0)) || Files.exists(root.marker($0)) }
            }
            try await root.waitUntil("an event for every request", timeout: .seconds(60)) {
                Set(try root.events().map(\.requestParameters.inputLocation)).count >= count + 1
            }
            let status = try await root.waitForStatus("nothing queued or running") { $0.Queued == 0 && $0.Running == 0 }
            #expect(status.Succeeded + status.Failed == count + 1, "\(status)")
            for (i, name) in names.enumerated() {
                if let output = Files.read(root.output(name)) {
                    #expect(output == payload(i, bytes: 2048, tag: "disk"), "output of \(name)")
                } else {
                    let marker = try root.readMarker(name)
                    #expect(marker.failureCode == "OutputWriteFailed", "\(name): \(marker.failureReason)")
                    let kept = try #require(marker.keptInputLocation)
                    #expect(Files.read(kept) == payload(i, bytes: 2048, tag: "disk"), "the input of \(name) is kept")
                }
            }
            #expect(try root.events().count == count + 1, "one event per request")
        }
    }
}
