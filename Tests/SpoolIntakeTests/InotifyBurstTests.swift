import Foundation
import Glibc
import SpoolCore
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

            let writer = Task.detached {
                // Four sub-folders made during the burst, so new-folder handling overlaps overflow.
                for index in 0..<total {
                    try writeFile(incoming + "/part\(index % 4)/f\(index)", "")
                }
            }
            let allArrived = await collector.wait(seconds: 60) { $0.paths.count == total }
            try await writer.value
            let view = await collector.snapshot
            #expect(allArrived, "only \(view.paths.count) of \(total) distinct files arrived")
            #expect(view.paths.allSatisfy { $0.hasPrefix("part") })
        }
    }
}
