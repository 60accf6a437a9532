import Foundation
import SpoolCore
import Testing
@testable import SpoolExecutors

#if canImport(Glibc)
import Glibc
#endif

/// `split = "line"` with real files and real child processes. Every wait is bounded.
@Suite struct LineSplitTests {
    static func split(
        _ inner: any ModelExecutor, maxBytes: Int, maxRecords: Int, concurrency: Int = 4, directory: String? = nil
    ) -> LineSplitExecutor {
        LineSplitExecutor(
            inner: inner, maxBatchBytes: maxBytes, maxBatchRecords: maxRecords, concurrency: concurrency,
            temporaryDirectory: directory
        )
    }

    @Test func twoHundredThousandLinesThroughBuiltinEchoStayInOrder() async throws {
        let payload = numberedLines(200_000)
        let fixture = try InvocationFixture(payload: payload)
        // No temporary folder given: batch files go next to the output, and are all gone after.
        let executor = Self.split(BuiltinExecutor(model: .echo), maxBytes: 16 * 1024, maxRecords: 500)
        let run = await fixture.runSplit(executor, chunkBytes: 4096)
        #expect(run?.0 == .succeeded)
        expectSameBytes(fixture.output, payload)
        #expect(run?.1.last == Int64(payload.count))
        #expect(run?.1 == run?.1.sorted())
        #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.directory).sorted() == ["output", "payload"])
    }

    @Test func twoHundredThousandLinesThroughCommandCatStayInOrder() async throws {
        let payload = numberedLines(200_000)
        let fixture = try InvocationFixture(payload: payload)
        let batches = try fixture.makeBatchDirectory()
        let executor = Self.split(CommandExecutor(argv: ["cat"]), maxBytes: 64 * 1024, maxRecords: 3000, directory: batches)
        let run = await fixture.runSplit(executor)
        #expect(run?.0 == .succeeded)
        expectSameBytes(fixture.output, payload)
        #expect(batchFiles(in: batches).isEmpty)
    }

    @Test func batchesFinishingOutOfOrderAreAppendedInOrder() async throws {
        let payload = numberedLines(2000)
        let fixture = try InvocationFixture(payload: payload)
        // Within each window of four, each batch answers only after the next one has: 3, 2, 1, 0.
        let model = FakeBatchModel(after: { $0 % 4 == 3 ? nil : $0 + 1 })
        let run = await fixture.runSplit(Self.split(model, maxBytes: 1 << 20, maxRecords: 100))
        #expect(run?.0 == .succeeded)
        expectSameBytes(fixture.output, payload)
        let state = model.snapshot
        #expect(state.started == 20)
        #expect(state.completionOrder.prefix(4) == [3, 2, 1, 0], "the batches finished out of order, as the model made them")
    }

    @Test func batchesRespectBothBoundsAndAreGreedy() async throws {
        // Lines of 1 to 300 bytes: some batches end at 7 records, others at 1,000 bytes.
        var text = ""
        for i in 0..<3000 { text += String(repeating: "abcdefghij", count: 30).prefix((i * 37) % 300) + "\n" }
        let payload = Array(text.utf8)
        let fixture = try InvocationFixture(payload: payload)
        let model = FakeBatchModel()
        let run = await fixture.runSplit(Self.split(model, maxBytes: 1000, maxRecords: 7), chunkBytes: 4096)
        #expect(run?.0 == .succeeded)
        let batches = model.batchesInOrder
        expectSameBytes(Array(batches.joined()), payload)
        #expect(model.snapshot.payloadBytes.sorted { $0.key < $1.key }.map(\.value) == batches.map { Int64($0.count) })
        var cutByRecords = 0, cutByBytes = 0
        let all = records(of: payload)
        var next = 0
        for (i, batch) in batches.enumerated() {
            let inBatch = records(of: batch)
            #expect(batch.count <= 1000 && inBatch.count <= 7 && batch.last == 0x0A)
            #expect(Array(all[next..<(next + inBatch.count)].joined()) == batch)
            next += inBatch.count
            guard i < batches.count - 1 else { continue }
            if inBatch.count == 7 { cutByRecords += 1 } else {
                #expect(batch.count + all[next].count > 1000, "batch \(i + 1) was cut early")
                cutByBytes += 1
            }
        }
        #expect(next == all.count)
        #expect(cutByRecords > 0 && cutByBytes > 0)
    }

    @Test(arguments: [
        // (payload, max bytes, max records, expected batches)
        ("aaaa\nbbbb\ncc\n", 10, 10, ["aaaa\nbbbb\n", "cc\n"]),   // exactly max bytes fits
        ("aaaa\nbbbbb\nc\n", 10, 10, ["aaaa\n", "bbbbb\nc\n"]),  // one byte over does not
        ("a\nb\nc\nd\ne\n", 100, 2, ["a\nb\n", "c\nd\n", "e\n"]),
        ("\n\n\nx", 100, 3, ["\n\n\n", "x"]),                   // empty lines are records
        ("0123456789ab\nc\n", 10, 10, ["0123456789ab\n", "c\n"]),  // too long: a batch of its own
    ])
    func batchBoundsAreExact(payload: String, maxBytes: Int, maxRecords: Int, expected: [String]) async throws {
        let fixture = try InvocationFixture(payload: Array(payload.utf8))
        let model = FakeBatchModel()
        let run = await fixture.runSplit(Self.split(model, maxBytes: maxBytes, maxRecords: maxRecords), chunkBytes: 4096)
        #expect(run?.0 == .succeeded)
        #expect(model.batchesInOrder.map { String(decoding: $0, as: UTF8.self) } == expected)
        #expect(fixture.output == Array(payload.utf8))
    }

    @Test func aCommandModelSeesCompleteLinesWithinTheBounds() async throws {
        let payload = numberedLines(10_000)
        let fixture = try InvocationFixture(payload: payload)
        let script = #"/^record [0-9]+ x*$/ { n++; next } { print "bad line: " $0 > "/dev/stderr"; exit 1 } END { print n + 0 }"#
        let awk = Self.split(CommandExecutor(argv: ["awk", script]), maxBytes: 4096, maxRecords: 300, concurrency: 3)
        let run = await fixture.runSplit(awk, chunkBytes: 4096)
        #expect(run?.0 == .succeeded)
        let counts = String(decoding: fixture.output, as: UTF8.self).split(separator: "\n").compactMap { Int($0) }
        #expect(counts.reduce(0, +) == 10_000)
        #expect(counts.allSatisfy { $0 >= 1 && $0 <= 300 })
        #expect(counts.count > 10_000 / 300)  // the byte bound cut some batches first
    }

    @Test func aRecordLongerThanTheByteBoundIsABatchOfItsOwn() async throws {
        let long = String(repeating: "y", count: 5000) + "\n"
        let payload = Array(("a\n" + long + "b\nc\n").utf8)
        let fixture = try InvocationFixture(payload: payload)
        let model = FakeBatchModel()
        let run = await fixture.runSplit(Self.split(model, maxBytes: 1024, maxRecords: 10), chunkBytes: 4096)
        #expect(run?.0 == .succeeded)
        #expect(model.batchesInOrder.map { String(decoding: $0, as: UTF8.self) } == ["a\n", long, "b\nc\n"])
        expectSameBytes(fixture.output, payload)
    }

    @Test(arguments: ["fake", "builtin echo"])
    func theLastLineWithoutANewlineIsARecord(inner: String) async throws {
        let payload = Array("a\nb\nc".utf8)
        let fixture = try InvocationFixture(payload: payload)
        let model = FakeBatchModel()
        let executor = Self.split(inner == "fake" ? model : BuiltinExecutor(model: .echo), maxBytes: 1024, maxRecords: 2)
        let run = await fixture.runSplit(executor)
        #expect(run?.0 == .succeeded)
        expectSameBytes(fixture.output, payload)
        #expect(run?.1.last == 5)
        if inner == "fake" { #expect(model.batchesInOrder == [Array("a\nb\n".utf8), Array("c".utf8)]) }
    }

    @Test func anEmptyPayloadIsZeroBatches() async throws {
        let fixture = try InvocationFixture(payload: [])
        let model = FakeBatchModel()
        let run = await fixture.runSplit(Self.split(model, maxBytes: 1024, maxRecords: 2))
        #expect(run?.0 == .succeeded)
        #expect(fixture.output.isEmpty)
        #expect(model.snapshot.started == 0)
    }

    @Test func aFailingBatchFailsTheRequestNamingItsRecords() async throws {
        var payload = numberedLines(2344)
        payload += Array("POISON\n".utf8)
        payload += numberedLines(2655, from: 2345)
        let fixture = try InvocationFixture(payload: payload)
        let batches = try fixture.makeBatchDirectory()
        let script = #"/^POISON$/ { print "poison at line " NR > "/dev/stderr"; exit 3 } { print }"#
        let executor = Self.split(CommandExecutor(argv: ["awk", script]), maxBytes: 1 << 20, maxRecords: 1000, concurrency: 2, directory: batches)
        let run = await fixture.runSplit(executor, within: .seconds(60))
        #expect(run?.0 == .failed(Failure(
            .modelError, "Batch 3 (records 2001–3000) failed: The model exited with status 3.",
            evidence: ModelEvidence(exitStatus: 3, tail: "poison at line 345\n"), retryable: true
        )))
        #expect(batchFiles(in: batches, allFiles: true).isEmpty)
    }

    @Test func cancellationStopsTheBatchesAndRemovesTheirFiles() async throws {
        let fixture = try InvocationFixture(payload: numberedLines(1000))
        let batches = try fixture.makeBatchDirectory()
        let started = fixture.directory + "/started"
        try FileManager.default.createDirectory(atPath: started, withIntermediateDirectories: false)
        // Each model reads its batch, says so with a file of its own, then sleeps.
        let model = CommandExecutor(
            argv: ["/bin/sh", "-c", "cat >/dev/null; : > \(started)/$$; sleep 30"], gracePeriod: .milliseconds(500))
        let executor = Self.split(model, maxBytes: 1 << 20, maxRecords: 100, concurrency: 2, directory: batches)
        let (inputPath, outputPath) = (fixture.inputPath, fixture.outputPath)
        let task = Task { await invokeSplit(executor, inputPath: inputPath, outputPath: outputPath) }
        var running = 0
        for _ in 0..<2000 where running < 2 {
            try await Task.sleep(for: .milliseconds(10))
            running = ((try? FileManager.default.contentsOfDirectory(atPath: started)) ?? []).count
        }
        #expect(running == 2, "the two batches' models never started")
        let cancelled = ContinuousClock.now
        task.cancel()
        let run = await value(of: task, within: .seconds(15))
        #expect(run?.0 == .failed(Failure(.cancelled, "The invocation was stopped.")))
        #expect(ContinuousClock.now - cancelled < .seconds(10))
        #expect(batchFiles(in: batches, allFiles: true).isEmpty)
    }

    @Test func theReadAheadWindowBoundsTheBatchFilesOnDisk() async throws {
        // About 4 MiB in ~500 batches, concurrency 3: never more than 6 batch files at once.
        let payload = numberedLines(120_000)
        let fixture = try InvocationFixture(payload: payload)
        let batches = try fixture.makeBatchDirectory()
        let model = FakeBatchModel(watching: batches, delay: { $0 % 5 == 0 ? .milliseconds(5) : .zero })
        let executor = Self.split(model, maxBytes: 8192, maxRecords: 1000, concurrency: 3, directory: batches)
        #expect(executor.readAhead == 6)
        let run = await fixture.runSplit(executor, chunkBytes: 4096)
        #expect(run?.0 == .succeeded)
        expectSameBytes(fixture.output, payload)
        let state = model.snapshot
        #expect(state.started > 400)
        #expect(state.maxInFlight <= 3 && state.maxInFlight >= 2)
        #expect(state.maxBatchFiles <= 6 && state.maxBatchFiles >= 2, "\(state.maxBatchFiles) batch files at once")
        #expect(batchFiles(in: batches, allFiles: true).isEmpty)
    }

    @Test func theFactoryWrapsLineSplitEndpoints() throws {
        var endpoint = EndpointConfig(name: "e", model: .command(["cat"]))
        #expect(try ExecutorFactory.make(for: endpoint) is CommandExecutor)
        endpoint.split = .line
        endpoint.splitMaxBytes = 4096
        endpoint.splitMaxRecords = 10
        endpoint.maxConcurrentInvocationsPerInstance = 3
        let split = try #require(try ExecutorFactory.make(for: endpoint, temporaryDirectory: "/tmp/x") as? LineSplitExecutor)
        #expect(split.inner is CommandExecutor)
        #expect(split.maxBatchBytes == 4096 && split.maxBatchRecords == 10 && split.concurrency == 3)
        #expect(split.temporaryDirectory == "/tmp/x")
    }
}
