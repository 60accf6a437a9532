import Foundation
import SpoolTestSupport
import Testing
@testable import SpoolStore

#if canImport(Glibc)
import Glibc
#endif

/// Outputs made durable and put in place, on real files.
@Suite struct OutputFilesTests {
    @Test func durableNamesTheOneOutputThatCouldNotBeFlushed() async throws {
        try await withTemporaryDirectory(prefix: "spool-outputs") { folder in
            var outputs: [(descriptor: Int32, path: String)] = []
            for name in ["a", "b"] {
                let fd = open(folder + "/" + name, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
                #expect(write(fd, name, 1) == 1)
                outputs.append((fd, folder + "/" + name))
            }
            // A pipe cannot be flushed (EINVAL): its output fails, the others' do not.
            var pipeEnds: [Int32] = [0, 0]
            #expect(pipe(&pipeEnds) == 0)
            defer { close(pipeEnds[0]) }
            outputs.insert((pipeEnds[1], folder + "/c"), at: 1)
            outputs.append((-1, folder + "/none"))
            let errors = OutputFiles.makeDurable(outputs)
            #expect(errors.map { $0 == nil } == [true, false, true, true])
            #expect(errors[1]?.errno == EINVAL && errors[1]?.message.contains(folder + "/c") == true, "\(String(describing: errors[1]))")
        }
    }

    @Test func placedUnderTheirNamesWithStaleMarkersGoneAndAMissingPartialReported() async throws {
        try await withTemporaryDirectory(prefix: "spool-outputs") { folder in
            try writeFile(folder + "/partial/1.out", "one")
            try writeFile(folder + "/partial/2.out", "two")
            try writeFile(folder + "/errors/sub/x.error.json", "{}")
            let placements = [
                OutputFiles.Placement(partial: folder + "/partial/1.out", destination: folder + "/outputs/sub/x.out",
                                      staleMarker: folder + "/errors/sub/x.error.json"),
                OutputFiles.Placement(partial: folder + "/partial/gone.out", destination: folder + "/outputs/sub/y.out",
                                      staleMarker: folder + "/errors/sub/y.error.json"),
                OutputFiles.Placement(partial: folder + "/partial/2.out", destination: folder + "/outputs/z.out",
                                      staleMarker: folder + "/errors/z.error.json"),
            ]
            let errors = OutputFiles.place(placements)
            #expect(errors[0] == nil && errors[2] == nil)
            #expect(errors[1]?.isNotFound == true, "\(String(describing: errors[1]))")
            #expect(try readFile(folder + "/outputs/sub/x.out") == "one")
            #expect(try readFile(folder + "/outputs/z.out") == "two")
            #expect(!exists(folder + "/errors/sub/x.error.json"), "the stale marker of a name now holding an output is gone")
            #expect(!exists(folder + "/outputs/sub/y.out") && !exists(folder + "/partial/1.out") && !exists(folder + "/partial/2.out"))
        }
    }
}
