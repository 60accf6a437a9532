import Foundation
import Glibc
import SpoolCore
import SpoolSystem
import SpoolTestSupport
import Testing
@testable import SpoolIntake

@Suite struct DirectoryScannerTests {
    @Test func findsNestedPayloadsAndSkipsHiddenTemporaryAndSidecarNames() async throws {
        try await withTemporaryDirectory { root in
            for name in ["a", "sub/b", "sub/deeper/c", ".hidden", "sub/x.tmp", "y~", ".hiddendir/d", "dir.part/e", "z.meta.json"] {
                try writeFile(root + "/" + name)
            }
            let found = DirectoryScanner.scan(endpoint: "ep", directory: root)
            #expect(Set(found.map(\.relativePath)) == ["a", "sub/b", "sub/deeper/c"])
            #expect(found.allSatisfy { $0.endpoint == "ep" })
        }
    }

    @Test func yieldsLinksAndFifosButNeverDescendsIntoALinkedFolder() async throws {
        try await withTemporaryDirectory { root in
            try writeFile(root + "/elsewhere/secret")
            try FileTree.makeDirectories(root + "/drop")
            #expect(symlink(root + "/elsewhere", root + "/drop/folder-link") == 0)
            #expect(symlink(root + "/elsewhere/secret", root + "/drop/file-link") == 0)
            #expect(mkfifo(root + "/drop/pipe", 0o644) == 0)
            let found = DirectoryScanner(endpoint: "default", directory: root + "/drop/").scan()
            #expect(Set(found.map(\.relativePath)) == ["folder-link", "file-link", "pipe"])
        }
    }

    @Test func aMissingFolderScansAsEmpty() async throws {
        try await withTemporaryDirectory { root in
            var errors: [SpoolIntakeError] = []
            #expect(DirectoryScanner(endpoint: "default", directory: root + "/nope").scan(onError: { errors.append($0) }).isEmpty)
            #expect(errors.isEmpty)
        }
    }

    @Test func scansFortyThousandFilesWellUnderASecond() async throws {
        try await withTemporaryDirectory { root in
            try await onThread {
                for index in 0..<40_000 {
                    try SystemCall.close(SystemCall.open(root + "/f\(index)", O_WRONLY | O_CREAT, mode: 0o644))
                }
            }.value
            let clock = ContinuousClock()
            var found: [IntakeCandidate] = []
            let elapsed = clock.measure { found = DirectoryScanner.scan(endpoint: "default", directory: root) }
            #expect(found.count == 40_000)
            #expect(elapsed < .seconds(1), "took \(elapsed)")
        }
    }
}
