import Foundation
import Glibc
import SpoolCore
import SpoolTestSupport
import Testing
@testable import SpoolIntake

@Suite struct StabilityTrackerTests {
    let a = IntakeCandidate(endpoint: "default", relativePath: "a")
    func signature(size: Int64, mtime: Int = 100, inode: UInt64 = 1) -> FileSignature {
        FileSignature(device: 1, inode: inode, size: size, modifiedSeconds: mtime, modifiedNanoseconds: 0)
    }

    /// Feeds the scans to a fresh tracker; returns what each scan reported.
    func run(_ scans: [[IntakeCandidate: FileSignature]]) -> [[IntakeCandidate]] {
        var tracker = StabilityTracker()
        return scans.map { tracker.observe($0) }
    }

    @Test func anEntryIsReportedOnceAfterTwoIdenticalScans() {
        let scan = [a: signature(size: 1)]
        #expect(run([scan, scan, scan]) == [[], [a], []])
    }

    @Test func aGrowingEntryIsNotReportedUntilItStopsChanging() {
        let growing = (1...5).map { [a: signature(size: Int64($0), mtime: 100 + $0)] }
        let reports = run(growing + [[a: signature(size: 5, mtime: 105)]])
        #expect(reports == [[], [], [], [], [], [a]])
    }

    @Test func anEntryThatGoesAndComesBackIsReportedAgain() {
        let first = [a: signature(size: 1)]
        let again = [a: signature(size: 1, inode: 2)]
        #expect(run([first, first, [:], again, again]) == [[], [a], [], [], [a]])
    }

    @Test func aReplacedEntryIsReportedAgainOnceStable() {
        let first = [a: signature(size: 1)]
        let replaced = [a: signature(size: 1, inode: 9)]
        #expect(run([first, first, replaced, replaced]) == [[], [a], [], [a]])
    }
}

@Suite struct SettlingFilesTests {
    let a = IntakeCandidate(endpoint: "default", relativePath: "a")
    func signature(size: Int64, mtime: Int) -> FileSignature {
        FileSignature(device: 1, inode: 1, size: size, modifiedSeconds: mtime, modifiedNanoseconds: 0)
    }

    @Test func oldFilesAndNonRegularEntriesAreAdmittedAtOnce() {
        var settling = SettlingFiles(settle: 1)
        let old = settling.admit(a, signature: signature(size: 1, mtime: 100), now: 200)
        let notRegular = settling.admit(a, signature: nil, now: 200)
        #expect(old && notRegular)
        #expect(settling.pending.isEmpty)
    }

    @Test func aFreshFileIsHeldUntilUnchangedAndOld() {
        var settling = SettlingFiles(settle: 1)
        let admitted = settling.admit(a, signature: signature(size: 1, mtime: 100), now: 100.5)
        #expect(!admitted)
        let changed = settling.check(now: 101.5) { _ in signature(size: 2, mtime: 101) }
        #expect(changed.isEmpty)
        let settled = settling.check(now: 102.5) { _ in signature(size: 2, mtime: 101) }
        #expect(settled == [a])
        #expect(settling.pending.isEmpty)
    }

    @Test func aHeldFileIsForgottenWhenGoneOrReportedByAnEvent() {
        var settling = SettlingFiles(settle: 1)
        _ = settling.admit(a, signature: signature(size: 1, mtime: 100), now: 100)
        settling.reported(a)
        #expect(settling.pending.isEmpty)
        _ = settling.admit(a, signature: signature(size: 1, mtime: 100), now: 100)
        let ready = settling.check(now: 105) { _ in nil }
        #expect(ready.isEmpty)
        #expect(settling.pending.isEmpty)
    }
}

@Suite struct PollingIntakeTests {
    @Test func onlyStableFilesAreYielded() async throws {
        try await withTemporaryDirectory { root in
            let incoming = root + "/incoming"
            try writeFile(incoming + "/stable")
            try writeFile(incoming + "/.hidden")
            let growing = try SystemCall.open(incoming + "/growing", O_WRONLY | O_CREAT, mode: 0o644)
            let intake = PollingIntake(folders: [(endpoint: "default", directory: incoming)], interval: .milliseconds(100))
            defer { intake.stop() }
            let collector = Collector.collecting(intake.candidates())

            // A writer appends every millisecond, far more often than the 100 ms scans, so two
            // consecutive scans never agree on its size and mtime while it runs.
            let stop = Flag()
            let finished = Flag()
            let writer = onThread {
                while !stop.isSet {
                    try writeAll(growing, "more\n")
                    usleep(1000)
                }
                finished.set()
                try SystemCall.close(growing)
            }
            #expect(await collector.wait(for: "stable"))
            // Several more scans happen while the writer runs: wait for a later file to settle.
            try writeFile(incoming + "/later")
            #expect(await collector.wait(for: "later"))
            #expect(await !collector.snapshot.paths.contains("growing"))

            stop.set()
            try await writer.value
            let arrived = await collector.wait { view in
                guard view.paths.contains("growing") else { return false }
                #expect(finished.isSet, "yielded while still being written")
                return true
            }
            #expect(arrived)
            let view = await collector.snapshot
            #expect(view.paths == ["stable", "later", "growing"])
            #expect(view.count(of: "stable") == 1)
        }
    }

    @Test func stopFinishesTheStreamAndMissingFoldersAreCreated() async throws {
        try await withTemporaryDirectory { root in
            let intake = PollingIntake(folders: [(endpoint: "default", directory: root + "/a/incoming")], interval: .milliseconds(20))
            let collector = Collector.collecting(intake.candidates())
            try writeFile(root + "/a/incoming/x")
            #expect(await collector.wait(for: "x"))
            intake.stop()
            #expect(await collector.wait { $0.finished })
        }
    }
}
