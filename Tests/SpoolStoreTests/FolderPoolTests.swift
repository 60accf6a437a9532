import Foundation
import Glibc
import SpoolCore
import Testing
@testable import SpoolStore
import SpoolSystem
import SpoolTestSupport

@Suite struct FolderPoolTests {
    func inode(_ path: String) -> ino_t {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_ino : 0
    }

    @Test func aClaimTakesAPooledFolderAsItsTokenFolder() async throws {
        try await withTemporaryDirectory { root in
            let layout = SpoolLayout(root: root)
            let pool = FolderPool(layout: layout)
            try FileManager.default.createDirectory(atPath: root + "/spare", withIntermediateDirectories: true)
            let spare = inode(root + "/spare")
            #expect(pool.put(root + "/spare"))
            #expect(pool.count == 1 && !exists(root + "/spare"))

            let claimer = PayloadClaimer(layout: layout, folders: pool)
            try writeFile(root + "/incoming/a.txt", "a")
            let claimed = try #require(try claimer.claim(IntakeCandidate(endpoint: "default", relativePath: "a.txt"), incomingDirectory: "incoming"))

            #expect(inode(claimed.tokenDirectory) == spare, "the token folder is the pooled one, renamed")
            #expect(pool.count == 0)
            #expect(try readFile(claimed.payloadPath) == "a")

            // An empty pool: the claim makes its folder.
            try writeFile(root + "/incoming/b.txt", "b")
            let second = try #require(try claimer.claim(IntakeCandidate(endpoint: "default", relativePath: "b.txt"), incomingDirectory: "incoming"))
            #expect(exists(second.tokenDirectory) && second.token != claimed.token)
        }
    }

    @Test func aPoolAdoptsWhatEarlierProcessesLeftAndStopsAtItsCapacity() async throws {
        try await withTemporaryDirectory { root in
            let layout = SpoolLayout(root: root)
            for name in ["x", "y"] {
                try FileManager.default.createDirectory(atPath: root + "/.spool/free/" + name, withIntermediateDirectories: true)
            }
            let pool = FolderPool(layout: layout, capacity: 3)
            #expect(pool.count == 2)
            for name in ["p", "q"] {
                try FileManager.default.createDirectory(atPath: root + "/" + name, withIntermediateDirectories: true)
            }
            #expect(pool.put(root + "/p"))
            #expect(!pool.put(root + "/q"), "full")
            #expect(exists(root + "/q"), "a folder the pool refuses stays where it is")

            // A folder another process took meanwhile is skipped.
            let entries = try FileManager.default.contentsOfDirectory(atPath: root + "/.spool/free").sorted()
            #expect(entries.count == 3)
            for name in entries.dropLast() { try FileManager.default.removeItem(atPath: root + "/.spool/free/" + name) }
            try FileManager.default.createDirectory(atPath: root + "/claimed", withIntermediateDirectories: true)
            #expect(pool.take(to: root + "/claimed/t1"))
            #expect(exists(root + "/claimed/t1"))
        }
    }

    @Test func fillMakesFoldersUpToTheCountAndTheCapacity() async throws {
        try await withTemporaryDirectory { root in
            let pool = FolderPool(layout: SpoolLayout(root: root), capacity: 5)
            pool.fill(to: 3)
            #expect(pool.count == 3)
            let made = try FileManager.default.contentsOfDirectory(atPath: root + "/.spool/free")
            #expect(made.count == 3)
            pool.fill(to: 10)
            #expect(pool.count == 5)
        }
    }
}
