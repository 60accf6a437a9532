import Foundation
import Glibc
import SpoolCore
import Testing
@testable import SpoolStore
import SpoolSystem
import SpoolTestSupport

@Suite struct PayloadFileTests {
    @Test func aRegularFileOpensInBlockingMode() async throws {
        try await withTemporaryDirectory { root in
            try writeFile(root + "/p", "data")
            let fd = try PayloadFile.openForReading(root + "/p")
            defer { close(fd) }
            #expect(fcntl(fd, F_GETFL) & O_NONBLOCK == 0)
            #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
            var buffer = [UInt8](repeating: 0, count: 16)
            #expect(read(fd, &buffer, 16) == 4)
        }
    }

    @Test func linksFifosAndFoldersAreRefusedWithoutBlocking() async throws {
        try await withTemporaryDirectory { root in
            try writeFile(root + "/target", "data")
            #expect(symlink(root + "/target", root + "/link") == 0)
            #expect(mkfifo(root + "/pipe", 0o644) == 0)
            try FileTree.makeDirectories(root + "/folder")
            for name in ["link", "pipe", "folder"] {
                // A FIFO opened for reading without a writer would block forever: bound it.
                let outcome = try await withinTimeout(10) { () -> SpoolStoreError? in
                    do {
                        close(try PayloadFile.openForReading(root + "/" + name))
                        return nil
                    } catch let error as SpoolStoreError {
                        return error
                    }
                }
                #expect(outcome?.code == .notRegularFile, "\(name): \(String(describing: outcome))")
            }
        }
    }

    @Test func aMissingFileReportsTheCallAndErrno() async throws {
        try await withTemporaryDirectory { root in
            let error = #expect(throws: SpoolStoreError.self) { try PayloadFile.openForReading(root + "/missing") }
            #expect(error?.call == "open")
            #expect(error?.errno == ENOENT)
            #expect(error?.isNotFound == true)
            #expect(error?.description.contains("missing") == true)
        }
    }
}
