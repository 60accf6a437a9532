import Foundation
import Glibc
import SpoolCore
import SpoolTestSupport
import Testing
@testable import SpoolIntake

@Suite struct InotifyBurstTests {
    /// 40,000 files written as fast as possible overflow the kernel's event queue
    /// (`fs.inotify.max_queued_events`, 16384 by default); the rescan that follows must find
    /// every one of them.
    @Test func everyFileOfA40000FileBurstIsYielded() async throws {
        let total = 40_000
        try await withTemporaryDirectory { root in
            let incoming = root + "/incoming"
            let intake = try InotifyIntake(folders: [(endpoint: "default", directory: incoming)])
            defer { intake.stop() }
            let collector = Collector.collecting(intake.candidates())

            let writer = onThread {
                // Half into the watched drop folder, half into three sub-folders made during the
                // burst, so new-folder handling overlaps a busy (possibly overflowing) queue.
                for index in 0..<total {
                    let folder = index % 2 == 0 ? "" : "part\(index % 3)/"
                    try writeFile(incoming + "/" + folder + "f\(index)", "")
                }
            }
            let allArrived = await collector.wait(seconds: 60) { $0.paths.count == total }
            try await writer.value
            let view = await collector.snapshot
            #expect(allArrived, "only \(view.paths.count) of \(total) distinct files arrived")
        }
    }

    /// The same burst while the intake is not reading: the kernel queue certainly overflows, and
    /// only the rescan can find the files whose events were dropped.
    @Test func aBurstThatOverflowsTheKernelQueueIsRecoveredByARescan() async throws {
        let total = 40_000
        try await withTemporaryDirectory { root in
            let incoming = root + "/incoming"
            let intake = try InotifyIntake(folders: [(endpoint: "default", directory: incoming)], settle: .milliseconds(200))
            defer { intake.stop() }
            let collector = Collector.collecting(intake.candidates())
            intake.waitUntilStarted()
            try await intake.withEventsPaused {
                // Into watched folders (two events a file: IN_CREATE, IN_CLOSE_WRITE).
                try await onThread { for index in 0..<total { try writeFile(incoming + "/f\(index)", "") } }.value
            }
            let allArrived = await collector.wait(seconds: 60) { $0.paths.count == total }
            let arrived = await collector.snapshot.paths.count
            #expect(allArrived, "only \(arrived) of \(total) distinct files arrived")
            #expect(intake.rescans >= 1)
        }
    }
}
