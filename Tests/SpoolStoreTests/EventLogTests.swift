import Foundation
import SpoolCore
import SpoolTestSupport
import Testing
@testable import SpoolStore

/// `events.jsonl` on a real file: whole lines, torn tails repaired, the tail scan recovery uses,
/// and following it with a clock the test moves.
@Suite struct EventLogTests {
    static func eventLine(_ id: String, at time: Date) -> Data {
        var request = InferenceRequest(
            id: id, endpoint: "default", source: .drop, inputPath: "\(id).txt", claimToken: "t-\(id)", payloadBytes: 1,
            ttlSeconds: 3600, timeoutSeconds: 60, maxAttempts: 1, receivedAt: time,
            outputLocation: "outputs/\(id).txt.out", failureLocation: "errors/\(id).txt.error.json")
        request.state = .succeeded
        request.finishedAt = time
        return NotificationEvent(
            request: request, inputLocation: "/r/incoming/\(id).txt", outputLocation: "/r/outputs/\(id).txt.out",
            failureLocation: "/r/errors/\(id).txt.error.json", eventTime: time
        ).jsonLine()
    }

    @Test func aTornTailIsCutAtTheFirstAppendAndEveryLineStaysWhole() async throws {
        try await withTemporaryDirectory(prefix: "spool-events") { folder in
            let path = folder + "/events.jsonl"
            let first = Self.eventLine("a", at: Date())
            // A crash in the middle of the second line.
            try (first + Data(#"{"eventVersion":"1.0","inferen"#.utf8)).write(to: URL(fileURLWithPath: path))
            let log = EventLog(path: path)
            var repairs: [EventLog.Repair] = []
            try log.append(Self.eventLine("b", at: Date())) { repairs.append($0) }
            try log.append(Self.eventLine("c", at: Date())) { repairs.append($0) }
            #expect(repairs == [EventLog.Repair(bytesCut: 30)], "cut once, at the first open")
            let lines = try Data(contentsOf: URL(fileURLWithPath: path)).split(separator: 0x0A)
            #expect(lines.count == 3)
            for line in lines { #expect((try? JSONSerialization.jsonObject(with: Data(line))) != nil) }
            #expect(log.recentIDs() == ["a", "b", "c"])
            #expect(log.recentIDs(bytes: lines.last!.count + 1) == ["c"], "only the tail is read")
        }
    }

    @Test func linesSinceACutoffThenFollowingWhatIsAppended() async throws {
        try await withTemporaryDirectory(prefix: "spool-events") { folder in
            let path = folder + "/events.jsonl"
            let log = EventLog(path: path)
            let old = Date(timeIntervalSince1970: 1_700_000_000), new = Date(timeIntervalSince1970: 1_800_000_000)
            try log.append(Self.eventLine("old", at: old) + Self.eventLine("new", at: new))
            let cutoff = Timestamp.string(Date(timeIntervalSince1970: 1_750_000_000))
            var once: [String] = []
            for await line in EventLog.lines(at: path, since: cutoff, follow: false) { once.append(Self.id(line)) }
            #expect(once == ["new"], "the old event is before the cutoff; without follow the stream ends")

            let clock = ManualClock()
            var lines = EventLog.lines(at: path, since: nil, follow: true, clock: clock, interval: .milliseconds(100)).makeAsyncIterator()
            #expect(await lines.next().map(Self.id) == "old")
            #expect(await lines.next().map(Self.id) == "new")
            #expect(await clock.waitForSleepers(), "all read: it waits on the clock")
            try log.append(Self.eventLine("later", at: new))
            clock.advance(by: .milliseconds(100))
            #expect(await lines.next().map(Self.id) == "later")
        }
    }

    static func id(_ line: Data) -> String {
        ((try? JSONSerialization.jsonObject(with: line)) as? [String: Any])?["inferenceId"] as? String ?? "?"
    }
}
