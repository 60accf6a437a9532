import Foundation
import Glibc
import SpoolCore
import SpoolSystem
import SpoolTestSupport
import Testing
@testable import SpoolIntake

/// Real inotify on real temporary folders. "Nothing arrived" is proven with a sentinel: events of
/// one folder are delivered in order, so once a sentinel written afterwards has arrived, any
/// candidate the earlier action would have produced would already be there.
@Suite struct InotifyIntakeTests {
    /// Starts an intake on `<root>/incoming`, waits for its start-up scan (so a test's own files
    /// never race it), runs `body`, and always stops the intake.
    func withIntake(
        _ root: String, settle: Duration = .milliseconds(300), prepare: (String) throws -> Void = { _ in },
        _ body: (String, InotifyIntake, Collector) async throws -> Void
    ) async throws {
        let incoming = root + "/incoming"
        try prepare(incoming)
        let intake = try InotifyIntake(folders: [(endpoint: "default", directory: incoming)], settle: settle)
        defer { intake.stop() }
        let collector = Collector.collecting(intake.candidates())
        intake.waitUntilStarted()
        try await body(incoming, intake, collector)
    }

    @Test func closeWriteYieldsTheFileOnce() async throws {
        try await withTemporaryDirectory { root in
            try await withIntake(root) { incoming, _, collector in
                try writeFile(incoming + "/a.txt")
                #expect(await collector.wait(for: "a.txt"))
                try writeFile(incoming + "/sentinel")
                #expect(await collector.wait(for: "sentinel"))
                #expect(await collector.snapshot.count(of: "a.txt") == 1)
                #expect(await collector.snapshot.items.allSatisfy { $0.endpoint == "default" })
            }
        }
    }

    @Test func temporaryNamesYieldNothingUntilMovedToARealName() async throws {
        try await withTemporaryDirectory { root in
            try await withIntake(root) { incoming, _, collector in
                for name in [".hidden", "x.tmp", "y.part", "z.partial", "w.meta.json"] { try writeFile(incoming + "/" + name) }
                try writeFile(incoming + "/sentinel-1")
                #expect(await collector.wait(for: "sentinel-1"))
                #expect(await collector.snapshot.paths == ["sentinel-1"])

                #expect(rename(incoming + "/.hidden", incoming + "/real-1") == 0)
                #expect(rename(incoming + "/x.tmp", incoming + "/real-2") == 0)
                try writeFile(incoming + "/sentinel-2")
                #expect(await collector.wait { $0.paths.isSuperset(of: ["real-1", "real-2", "sentinel-2"]) })
                let view = await collector.snapshot
                #expect(view.paths == ["sentinel-1", "real-1", "real-2", "sentinel-2"])
                #expect(view.count(of: "real-1") == 1 && view.count(of: "real-2") == 1)
            }
        }
    }

    @Test func aFileStillOpenForWritingIsNotYieldedUntilClosed() async throws {
        try await withTemporaryDirectory { root in
            try await withIntake(root) { incoming, _, collector in
                let fd = try SystemCall.open(incoming + "/big.bin", O_WRONLY | O_CREAT, mode: 0o644)
                try writeAll(fd, String(repeating: "x", count: 100_000))
                try writeFile(incoming + "/sentinel")
                #expect(await collector.wait(for: "sentinel"))
                #expect(await !collector.snapshot.paths.contains("big.bin"))

                try writeAll(fd, "the end")
                try SystemCall.close(fd)
                #expect(await collector.wait(for: "big.bin"))
            }
        }
    }

    @Test func oddNamesAndLongPathsAreYieldedVerbatim() async throws {
        let long = String(repeating: "d", count: 200)
        let names = [
            "with space.txt", "new\nline.txt", "ünïcødé-名前.txt", "-leading-dash", "emoji 🎉",
            "\(long)/\(long)/\(long)/" + String(repeating: "n", count: 255),
        ]
        try await withTemporaryDirectory { root in
            try await withIntake(root) { incoming, _, collector in
                for name in names { try writeFile(incoming + "/" + name, name) }
                #expect(await collector.wait { $0.paths.isSuperset(of: names) })
            }
        }
    }

    @Test func aFileCreatedInABrandNewSubFolderIsNotMissed() async throws {
        // mkdir -p and an immediate write, before the intake can possibly have watched the new
        // folders: the scan that follows each new watch must find the files.
        let expected = (0..<25).flatMap { ["r\($0)/b/c/deep.txt", "r\($0)/b/middle.txt"] }
        try await withTemporaryDirectory { root in
            try await withIntake(root) { incoming, _, collector in
                for index in 0..<25 {
                    try FileTree.makeDirectories(incoming + "/r\(index)/b/c")
                    try writeFile(incoming + "/r\(index)/b/c/deep.txt")
                    try writeFile(incoming + "/r\(index)/b/middle.txt")
                }
                #expect(await collector.wait { $0.paths.isSuperset(of: expected) })
            }
        }
    }

    @Test func aFolderMovedInIsScannedAndWatched() async throws {
        try await withTemporaryDirectory { root in
            try await withIntake(root) { incoming, _, collector in
                try writeFile(incoming + "/.staging/tree/one.txt")
                try writeFile(incoming + "/.staging/tree/sub/two.txt")
                #expect(rename(incoming + "/.staging/tree", incoming + "/tree") == 0)
                #expect(await collector.wait { $0.paths.isSuperset(of: ["tree/one.txt", "tree/sub/two.txt"]) })
                try writeFile(incoming + "/tree/sub/three.txt")
                #expect(await collector.wait(for: "tree/sub/three.txt"))
            }
        }
    }

    @Test func aRenamedSubFolderReportsItsNewName() async throws {
        try await withTemporaryDirectory { root in
            try await withIntake(root) { incoming, _, collector in
                try writeFile(incoming + "/old/first")
                #expect(await collector.wait(for: "old/first"))
                #expect(rename(incoming + "/old", incoming + "/new") == 0)
                try writeFile(incoming + "/new/second")
                #expect(await collector.wait(for: "new/second"))
                #expect(await !collector.snapshot.paths.contains("old/second"))
            }
        }
    }

    @Test func filesPresentAtStartAreFoundByTheStartUpScan() async throws {
        // Given files dropped while Spool was not running (an hour ago), some with names to ignore.
        try await withTemporaryDirectory { root in
            try await withIntake(root, prepare: { incoming in
                for name in ["a", "sub/b", "sub/deeper/c", ".hidden", "sub/x.tmp", ".hiddendir/d", "dir.tmp/e", "sub/y.meta.json"] {
                    try writeFile(incoming + "/" + name)
                    try setModificationTime(incoming + "/" + name, secondsAgo: 3600)
                }
            }) { incoming, _, collector in
                // The scan reports them at once, before any later event.
                try writeFile(incoming + "/sentinel")
                #expect(await collector.wait(for: "sentinel"))
                #expect(await collector.snapshot.paths == ["a", "sub/b", "sub/deeper/c", "sentinel"])
            }
        }
    }

    @Test func aFileBeingWrittenAtStartUpWaitsForItsCloseEvent() async throws {
        try await withTemporaryDirectory { root in
            let path = root + "/incoming/open.bin"
            try writeFile(path, "")
            let fd = try SystemCall.open(path, O_WRONLY | O_APPEND)
            let closed = Flag()
            try await withIntake(root, settle: .milliseconds(500)) { incoming, _, collector in
                // The writer keeps appending (every 5 ms, far below `settle`) for a second, then closes.
                let writer = onThread {
                    let deadline = ContinuousClock.now + .seconds(1)
                    while ContinuousClock.now < deadline {
                        try writeAll(fd, "chunk\n")
                        usleep(5000)
                    }
                    closed.set()
                    try SystemCall.close(fd)
                }
                let arrived = await collector.wait(seconds: 10) { view in
                    guard view.paths.contains("open.bin") else { return false }
                    #expect(closed.isSet, "yielded while still open for writing")
                    return true
                }
                #expect(arrived)
                try await writer.value
                #expect(await collector.snapshot.count(of: "open.bin") == 1)
            }
        }
    }

    @Test func aFreshFileFoundByTheStartUpScanIsYieldedOnceSettled() async throws {
        try await withTemporaryDirectory { root in
            try await withIntake(root, settle: .milliseconds(200), prepare: { incoming in
                try writeFile(incoming + "/fresh")
            }) { _, _, collector in
                #expect(await collector.wait(for: "fresh"))
            }
        }
    }

    @Test func aMissingDropFolderIsCreatedAndADeletedOneIsMadeAgain() async throws {
        try await withTemporaryDirectory { root in
            try await withIntake(root) { incoming, _, collector in
                #expect(exists(incoming))
                try FileTree.removeTree(incoming)
                // The intake re-creates it on IN_IGNORED; there is no event for us to wait on.
                #expect(await eventually { exists(incoming) })
                try writeFile(incoming + "/after.txt")
                #expect(await collector.wait(for: "after.txt"))
            }
        }
    }

    @Test func stopClosesTheDescriptorAndFinishesTheStream() async throws {
        try await withTemporaryDirectory { root in
            let intake = try InotifyIntake(folders: [(endpoint: "default", directory: root + "/incoming")])
            let collector = Collector.collecting(intake.candidates())
            intake.stop()
            #expect(intake.isClosed)
            #expect(await collector.wait { $0.finished })
            intake.stop()  // idempotent
        }
    }

    @Test func aSecondStreamEndsAtOnceAndLeavesTheFirstRunning() async throws {
        try await withTemporaryDirectory { root in
            try await withIntake(root) { incoming, intake, collector in
                for await _ in intake.candidates() { Issue.record("the second stream yielded") }
                try writeFile(incoming + "/still-running")
                #expect(await collector.wait(for: "still-running"))
            }
        }
    }

    @Test func anUnusableDropFolderFailsAtInitAndAnUnstartedIntakeCanBeDropped() async throws {
        try await withTemporaryDirectory { root in
            try writeFile(root + "/file")
            #expect(throws: SpoolIntakeError.self) {
                try InotifyIntake(folders: [(endpoint: "default", directory: root + "/file/incoming")])
            }
            _ = try InotifyIntake(folders: [(endpoint: "default", directory: root + "/unused")])
        }
    }

    @Test func cancellingTheConsumerClosesTheDescriptor() async throws {
        try await withTemporaryDirectory { root in
            let intake = try InotifyIntake(folders: [(endpoint: "default", directory: root + "/incoming")])
            let consumer = Task { for await _ in intake.candidates() {} }
            consumer.cancel()
            await consumer.value
            // onTermination only asks the intake's queue to close; wait for it, bounded.
            #expect(await eventually { intake.isClosed })
        }
    }
}
