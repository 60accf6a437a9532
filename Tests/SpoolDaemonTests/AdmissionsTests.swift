import Foundation
import Logging
import SpoolCore
import SpoolDaemon
import SpoolLedger
import SpoolTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Queueing without an engine (what `spool invoke` does): a real root, a real SQLite ledger, no
/// executor and no worker.
@Suite struct AdmissionsTests {
    static func root() throws -> (SpoolLayout, SQLiteLedger) {
        let path = try makeTemporaryDirectory(prefix: "spool-admissions")
        try FileManager.default.createDirectory(atPath: path + "/.spool", withIntermediateDirectories: true)
        let layout = SpoolLayout(root: path)
        return (layout, try SQLiteLedger(path: layout.ledgerPath))
    }

    static func payload(_ bytes: [UInt8], in layout: SpoolLayout) throws -> Int32 {
        let path = layout.path("payload.bin")
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        #expect(fd >= 0)
        return fd
    }

    @Test func aSubmittedPayloadIsClaimedAndQueuedWithNoModelAtAll() async throws {
        let (layout, ledger) = try Self.root()
        defer { try? FileManager.default.removeItem(atPath: layout.root) }
        // A model no one could start: admissions never look at it.
        var endpoint = EndpointConfig(name: "default", model: .command(["/nonexistent/model"]))
        endpoint.maxPayloadBytes = 1 << 20
        let config = SpoolConfig(endpoints: [endpoint])
        let admissions = try Admissions.standalone(layout: layout, config: config, ledger: ledger, logger: Logger(label: "test"))
        let fd = try Self.payload(Array("hello".utf8), in: layout)
        defer { close(fd) }
        var metadata = RequestMetadata()
        metadata.inferenceId = "mine-1"
        let request = try #require(try await admissions.submit(from: fd, endpoint: endpoint, metadata: metadata, source: .invoke))
        #expect(request.id == "mine-1" && request.state == .queued && request.payloadBytes == 5)
        #expect(request.outputLocation == "outputs/mine-1.out")
        let claimed = layout.path("\(SpoolLayout.claimedDirectory)/default/\(request.claimToken)/mine-1")
        #expect(FileManager.default.contents(atPath: claimed) == Data("hello".utf8), "the payload is in its claim, whole")
        #expect(try await ledger.request(id: "mine-1")?.state == .queued)
        let partials = try FileManager.default.contentsOfDirectory(atPath: layout.path(SpoolLayout.partialDirectory))
        #expect(partials.isEmpty, "no temporary copy is left: \(partials)")
    }

    @Test func aPayloadRefusedAtAdmissionGetsItsMarkerAtOnce() async throws {
        let (layout, ledger) = try Self.root()
        defer { try? FileManager.default.removeItem(atPath: layout.root) }
        var endpoint = EndpointConfig(name: "default")
        endpoint.maxPayloadBytes = 4
        let admissions = try Admissions.standalone(
            layout: layout, config: SpoolConfig(endpoints: [endpoint]), ledger: ledger, logger: Logger(label: "test"))
        let fd = try Self.payload(Array("too large".utf8), in: layout)
        defer { close(fd) }
        let request = try #require(try await admissions.submit(from: fd, endpoint: endpoint, metadata: RequestMetadata(), source: .invoke))
        #expect(request.state == .failed && request.failureCode == .payloadTooLarge)
        let marker = try #require(FileManager.default.contents(atPath: layout.path(request.failureLocation)))
        #expect(String(decoding: marker, as: UTF8.self).contains("max_payload_bytes"))
    }
}
