import Foundation
import SpoolCore
import SpoolTestSupport
import Testing

@testable import SpoolDaemon
@testable import SpoolHTTP

extension HTTPAPITests {
    /// The status page over HTTP: what it shows, who may see it, and what it never serves.
    @Suite struct StatusPage {
        static let token = "page-token-0123456789"

        static func basic(_ password: String, user: String = "me") -> (String, String) {
            ("Authorization", "Basic " + Data("\(user):\(password)".utf8).base64EncodedString())
        }

        @Test("with a token, a browser is challenged (401, Basic) and let in with the token as password; the token never appears in the page")
        func tokenGuardsThePage() async throws {
            try await TestServer.with(extraHTTP: "auth_token = \"\(Self.token)\"") { server in
                for path in ["/", "/ui/requests/x", "/ui/app.js"] {
                    let bare = try await server.send(.GET, path)
                    #expect(bare.status == 401, "\(path)")
                    #expect(bare.header("WWW-Authenticate")?.hasPrefix("Basic realm=\"Spool\"") == true)
                    #expect(try await server.send(.GET, path, headers: [Self.basic("wrong-token-0123456789")]).status == 401)
                }
                let page = try await server.send(.GET, "/", headers: [Self.basic(Self.token)])
                #expect(page.status == 200)
                #expect(page.header("Content-Type") == "text/html; charset=utf-8")
                #expect(!page.text.contains(Self.token))
                #expect(try await server.send(.GET, "/", headers: [("Authorization", "Bearer \(Self.token)")]).status == 200)
                // Basic credentials open the page only, not the API.
                expectError(try await server.send(.GET, "/metrics", headers: [Self.basic(Self.token)]),
                            status: 403, type: "UnrecognizedClientException")
            }
        }

        @Test("the page shows each endpoint's counts and the latest failures, read-only, with a policy that runs no inline script")
        func pageShowsTheQueue() async throws {
            try await TestServer.with(extra: "[endpoints.broken]\nmodel = { builtin = \"fail\" }\n") { server in
                let ok = try await server.invoke([:], body: Data("hello".utf8))
                let bad = try await server.invoke(["Custom-Attributes": "<b>bold</b>"], endpoint: "broken", body: Data("x".utf8))
                for answer in [ok, bad] {
                    _ = try await server.finished(try #require(answer.json["InferenceId"] as? String))
                }
                let badID = try #require(bad.json["InferenceId"] as? String)
                let page = try await server.send(.GET, "/")
                #expect(page.status == 200)
                let csp = try #require(page.header("Content-Security-Policy"))
                #expect(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"))
                #expect(page.text.contains("data-endpoint=\"default\"") && page.text.contains("data-endpoint=\"broken\""))
                #expect(page.text.contains("<dd class=\"processed\">1</dd>"))
                #expect(page.text.contains("<dd class=\"failed\">1</dd>"))
                #expect(page.text.contains("href=\"/ui/requests/\(badID)\""))
                #expect(page.text.contains("ModelError"))

                let detail = try await server.send(.GET, "/ui/requests/\(badID)")
                #expect(detail.status == 200)
                #expect(detail.text.contains("&lt;b&gt;bold&lt;/b&gt;") && !detail.text.contains("<b>bold"), "\(detail.text)")
                #expect(detail.text.contains("fail: this model fails every request"), "the model's last words, from the marker")
                #expect(try await server.send(.GET, "/ui/requests/nope").status == 404)
                let search = try await server.send(.GET, "/ui/requests?id=\(badID)")
                #expect(search.status == 200 && search.text.contains("Request <code>\(badID)</code>"), "the search redirects to the request's page")
                #expect(try await server.send(.GET, "/ui/app.js").text.contains("DOMParser"))
                // Read-only, and nothing of `.spool/`.
                let post = try await server.send(.POST, "/", body: Data())
                #expect(post.status == 405 || post.status == 404, "\(post.status)")
                #expect(try await server.send(.GET, "/.spool/ledger.sqlite").status == 404)
                #expect(try await server.send(.GET, "/ui/../.spool/ledger.sqlite").status == 404)
            }
        }
    }
}

/// The page's views and their HTML, without a server.
@Suite struct StatusPageViewTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_020)  // 20 s into a minute

    static func sample(finishedSecondsAgo: Double, took: Double) -> LatencySample {
        let finished = now.addingTimeInterval(-finishedSecondsAgo)
        return LatencySample(receivedAt: finished.addingTimeInterval(-took), startedAt: finished.addingTimeInterval(-took / 2), finishedAt: finished)
    }

    @Test func minutesBucketTheLastHourOldestFirst() {
        let samples = [
            Self.sample(finishedSecondsAgo: 1, took: 0.010), Self.sample(finishedSecondsAgo: 2, took: 0.030),
            Self.sample(finishedSecondsAgo: 125, took: 1.0), Self.sample(finishedSecondsAgo: 4000, took: 5),
        ]
        let minutes = StatusOverview.minutes(of: samples, now: Self.now)
        #expect(minutes.count == 60)
        #expect(minutes.last?.finished == 2 && minutes.last?.p50 == 10 && minutes.last?.p99 == 30)
        #expect(minutes[57].finished == 1 && minutes[57].p50 == 1000)
        #expect(minutes.reduce(0) { $0 + $1.finished } == 3, "older than an hour: left out")
        #expect(minutes[10].p50 == nil, "an idle minute has no latency, not zero")
        #expect(zip(minutes, minutes.dropFirst()).allSatisfy { $1.start.timeIntervalSince($0.start) == 60 })
    }

    static let hostile = "<img src=x onerror=alert(1)>.txt"

    static func overview() -> StatusOverview {
        var minutes = StatusOverview.minutes(of: [], now: now)
        minutes[59] = .init(start: minutes[59].start, finished: 4, p50: 12, p99: 40)
        return StatusOverview(
            time: now,
            endpoints: [.init(
                name: "e\"><script>x()</script>", queued: 3, running: 1, oldestQueuedAge: 75, instances: 2,
                succeeded: 10, failed: 2, expired: 0, cancelled: 1, minutes: minutes, chartKnownSince: nil)],
            failures: [.init(
                id: "id-'\"<>&", endpoint: "e", state: "failed", code: "ModelError", reason: "boom </td><script>alert(2)</script>",
                finishedAt: now, inputLocation: "/r/incoming/\(hostile)", markerLocation: "/r/errors/\(hostile).error.json")])
    }

    @Test func everyOutsideValueIsEscaped() {
        let html = StatusPageHTML.overview(Self.overview())
        #expect(!html.contains("<img"), "a file name is text, never markup")
        #expect(!html.contains("<script>"), "no value turns into a script")
        #expect(html.contains("&lt;img src=x onerror=alert(1)&gt;.txt"))
        #expect(html.contains("boom &lt;/td&gt;&lt;script&gt;alert(2)&lt;/script&gt;"))
        #expect(html.contains("data-endpoint=\"e&quot;&gt;&lt;script&gt;x()&lt;/script&gt;\""))
        #expect(html.contains("href=\"/ui/requests/id-%27%22%3C%3E%26\""), "ids are percent-encoded in links")
        #expect(html.contains("<dd class=\"queued\">3</dd>") && html.contains("<dd class=\"oldest\">75 s</dd>"))
        #expect(html.contains("<dd class=\"processed\">12</dd>"))
        #expect(html.contains("<script src=\"/ui/app.js\" defer></script>"), "the page's only script is its own file")
    }

    @Test func chartsDrawBarsAndBrokenLines() {
        var minutes = StatusOverview.minutes(of: [], now: Self.now)
        for i in [10, 11, 12, 30] { minutes[i] = .init(start: minutes[i].start, finished: i, p50: Double(i), p99: Double(2 * i)) }
        let bars = StatusPageHTML.throughputChart(minutes)
        #expect(bars.components(separatedBy: "<rect").count - 1 == 4)
        #expect(bars.contains("last hour: 63"))
        let lines = StatusPageHTML.latencyChart(minutes)
        #expect(lines.components(separatedBy: "<polyline class=\"p50\"").count - 1 == 1, "10–12 joined, an idle gap before 30")
        #expect(lines.components(separatedBy: "<circle class=\"p99\"").count - 1 == 1, "a lone minute is a dot")
        #expect(lines.contains("60 ms"), "the scale is the highest p99")
    }

    @Test func requestPageShowsProgressAndTheMarkersTail() throws {
        let base = try makeTemporaryDirectory(prefix: "spool-page")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let request = InferenceRequest(
            id: "r1", endpoint: "e", source: .drop, inputPath: Self.hostile, claimToken: "t", payloadBytes: 1000,
            ttlSeconds: 60, timeoutSeconds: 60, maxAttempts: 1, receivedAt: Self.now,
            outputLocation: "outputs/x.out", failureLocation: "errors/x.error.json")
        var marker = ErrorMarker(request: request, inputLocation: "/r/incoming/\(Self.hostile)", keptInputLocation: nil, failedAt: Self.now)
        marker.modelOutputTail = "Traceback <module>\nValueError: bad"
        let markerPath = base + "/marker.json"
        try JSONEncoder().encode(marker).write(to: URL(fileURLWithPath: markerPath))
        #expect(RequestDetail.readMarker(at: markerPath)?.modelOutputTail == marker.modelOutputTail)
        try FileManager.default.createSymbolicLink(atPath: base + "/link.json", withDestinationPath: markerPath)
        #expect(RequestDetail.readMarker(at: base + "/link.json") == nil, "a link in errors/ is not followed")

        let json = #"{"InferenceId":"r1","EndpointName":"e","State":"running","InputLocation":"/r/in","OutputLocation":"/r/out","FailureLocation":"/r/err","PayloadBytes":1000,"BytesProcessed":250,"ReceivedTime":"t","Attempts":1}"#
        let view = try JSONDecoder().decode(RequestView.self, from: Data(json.utf8))
        let running = RequestDetail(request: view, marker: nil)
        #expect(running.progress == 0.25)
        #expect(StatusPageHTML.request(running).contains("<progress max=\"100\" value=\"25\"></progress> 25 %"))
        let failed = StatusPageHTML.request(RequestDetail(request: view, marker: marker))
        #expect(failed.contains("Traceback &lt;module&gt;\nValueError: bad"))
        #expect(failed.contains("data-refresh=\"off\""))
    }
}

/// Times as S3 and SigV4 write them, formatted and parsed by hand.
@Suite struct S3TimeTests {
    @Test func httpDatesAndAmzDates() {
        #expect(S3Time.http(Date(timeIntervalSince1970: 0)) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(S3Time.http(Date(timeIntervalSince1970: 1_796_043_667.9)) == "Mon, 30 Nov 2026 13:01:07 GMT")
        #expect(S3Time.iso(Date(timeIntervalSince1970: 1_440_938_160.25)) == "2015-08-30T12:36:00.250Z")
        #expect(SigV4.parseDate("20150830T123600Z") == Date(timeIntervalSince1970: 1_440_938_160))
        for bad in ["20150830T123600", "2015-08-30T12:36:00Z", "20151330T123600Z", "2015083xT123600Z"] {
            #expect(SigV4.parseDate(bad) == nil, "\(bad)")
        }
    }
}
