import Foundation
import SpoolCore
import SpoolLedgerConformance
import SpoolPostgres
import Testing

@Suite struct LedgerURLTests {
    @Test("postgres:// URLs: TCP, a Unix socket's folder, and what is refused")
    func parsing() throws {
        let tcp = try LedgerURL("postgres://spool:secret@db.example:5433/queue")
        #expect(tcp.user == "spool" && tcp.password == "secret" && tcp.host == "db.example" && tcp.port == 5433 && tcp.database == "queue")
        #expect(tcp.description == "postgres://spool@db.example:5433/queue", "no password in messages")
        let socket = try LedgerURL("postgres://spool@/queue?host=/run/postgresql")
        #expect(socket.host == "/run/postgresql" && socket.port == 5432 && socket.server == "/run/postgresql/.s.PGSQL.5432")
        #expect(socket.description == "postgres://spool@/queue?host=/run/postgresql")
        for bad in ["mysql://u@h/db", "postgres://h/db", "postgres://u@h/", "postgres://u@/db", "not a url"] {
            #expect(throws: LedgerError.self, "\(bad)") { try LedgerURL(bad) }
        }
        do {
            _ = try LedgerURL("postgres://u:hunter2@h")
        } catch {
            #expect(!"\(error)".contains("hunter2"), "the password is not repeated: \(error)")
        }
    }
}

@Suite(.enabled(if: TestServer.url != nil, "SPOOL_TEST_POSTGRES_URL is not set (scripts/test starts a server and sets it)"))
struct PostgresLedgerTests {
    @Test("a server that is not there, a database that does not exist, an empty database opened by a reader: one clear line each")
    func clearStartErrors() async throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("no-server-\(UUID().uuidString)").path
        await #expect {
            _ = try await PostgresLedger.open(url: "postgres://spool@/queue?host=\(missing)")
        } throws: { error in
            "\(error)".contains("\(missing)/.s.PGSQL.5432") && "\(error)".contains("queue") && "\(error)".contains("does not answer")
        }
        let server = try LedgerURL(try #require(TestServer.url))
        await #expect {
            _ = try await PostgresLedger.open(url: "postgres://postgres@/nosuchdb?host=\(server.host)")
        } throws: { error in
            "\(error)".contains("nosuchdb") && "\(error)".contains("does not exist")
        }
        let empty = try await TestServer.freshDatabase()
        await #expect {
            _ = try await PostgresLedger.open(url: empty, migrating: false)
        } throws: { error in
            "\(error)".contains("no Spool ledger")
        }
        // Migrated, a reader opens it; two processes migrating at once migrate once.
        async let a = PostgresLedger.open(url: empty)
        async let b = PostgresLedger.open(url: empty)
        _ = try await (a, b)
        _ = try await PostgresLedger.open(url: empty, migrating: false)
    }

    @Test("four handles claiming 400 requests at once: each claimed exactly once; the counts folded and unfolded agree")
    func concurrentClaimsAndCounts() async throws {
        let url = try await TestServer.freshDatabase()
        let ledger = try await PostgresLedger.open(url: url)
        let requests = (0..<400).map { LedgerConformance.request(String(format: "r%04d", $0)) }
        let results = try await ledger.admit(requests.map { Admission($0) })
        #expect(results.allSatisfy { (try? $0.get()) != nil })
        let claimed = try await withThrowingTaskGroup(of: [String].self) { group in
            for worker in 0..<4 {
                group.addTask {
                    let handle = try await PostgresLedger.open(url: url)
                    var ids: [String] = []
                    while true {
                        let result = try await handle.claimNext(
                            endpoints: ["default"], owner: "w\(worker)", now: LedgerConformance.at(1), batch: ClaimBatch(more: 3, maxBytes: 4096))
                        if result.batch.isEmpty { return ids }
                        ids += result.batch.map(\.id)
                        let finished = try await handle.finish(
                            result.batch.map { FinishedAttempt(id: $0.id, result: .succeeded) }, owner: "w\(worker)", now: LedgerConformance.at(2))
                        #expect(finished.allSatisfy { $0?.state == .succeeded })
                    }
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(claimed.count == 400 && Set(claimed).count == 400, "claimed \(claimed.count), distinct \(Set(claimed).count)")
        let stats = try await ledger.queueStats()
        #expect(stats["default"]?.count(.succeeded) == 400 && stats["default"]?.count(.queued) == 0 && stats["default"]?.count(.running) == 0)
        #expect(try await ledger.unnotified(limit: 1000).count == 400)
        #expect(try await ledger.delete(ids: claimed.prefix(100).map { $0 }) == 100)
        #expect(try await ledger.queueStats()["default"]?.count(.succeeded) == 300)
    }
}

@Suite(.enabled(if: TestServer.url != nil, "SPOOL_TEST_POSTGRES_URL is not set (scripts/test starts a server and sets it)"))
struct PostgresWakeUpTests {
    @Test("a request queued through one handle is announced to another's listener (LISTEN/NOTIFY), at most once per 100 ms per endpoint", .timeLimit(.minutes(1)))
    func admissionsAreAnnounced() async throws {
        let url = try await TestServer.freshDatabase()
        let listener = try await PostgresLedger.open(url: url)
        let admitter = try await PostgresLedger.open(url: url)
        let (heard, continuation) = AsyncStream.makeStream(of: String.self)
        let listening = Task { await listener.listenForQueued { continuation.yield($0) } }
        defer { listening.cancel() }
        // LISTEN is in place once a notification sent after it arrives: send until one does.
        var iterator = heard.makeAsyncIterator()
        let first = Task {
            for i in 0..<100 {
                _ = try await admitter.admit([Admission(LedgerConformance.request("probe-\(i)", endpoint: "probe"))])
                try await Task.sleep(for: .milliseconds(200))
                if Task.isCancelled { return }
            }
        }
        #expect(await iterator.next() == "probe")
        first.cancel()
        // A burst of 50 admissions of one endpoint: announced, at most once per 100 ms.
        let clock = ContinuousClock()
        let started = clock.now
        for i in 0..<50 {
            _ = try await admitter.admit([Admission(LedgerConformance.request("burst-\(i)", endpoint: "burst"))])
        }
        let windows = Int((clock.now - started) / .milliseconds(100)) + 2
        // Then one more endpoint, once the burst's window has surely closed: every burst
        // announcement arrives before its.
        try await Task.sleep(for: .milliseconds(300))
        _ = try await admitter.admit([Admission(LedgerConformance.request("end", endpoint: "end"))])
        var burst = 0
        while let endpoint = await iterator.next(), endpoint != "end" {
            if endpoint == "burst" { burst += 1 }
        }
        #expect(burst >= 1 && burst <= min(windows, 49), "\(burst) announcements for 50 admissions in \(windows - 2) windows of 100 ms")
        let counted = try await admitter.queueStats()["burst"]?.count(.queued)
        #expect(counted == 50)
    }
}

@Suite(.enabled(if: TestServer.url != nil, "SPOOL_TEST_POSTGRES_URL is not set (scripts/test starts a server and sets it)"))
struct PostgresLeaseTests {
    @Test("a lease: taken, renewed, alive; lapsed, then rescued once — its running requests requeued without using an attempt", .timeLimit(.minutes(1)))
    func leaseLifecycle() async throws {
        let url = try await TestServer.freshDatabase()
        // A lease long enough that no stall of the test process lets it lapse by itself; the
        // test makes it lapse (below) by moving its expiry into the database clock's past.
        let ledger = try await PostgresLedger.open(url: url, lease: .seconds(600))
        try await LedgerConformance.admit([LedgerConformance.request("r1")], to: ledger)
        #expect(try await ledger.claimNext(endpoints: ["default"], owner: "a", now: LedgerConformance.at(1)).claimed?.id == "r1")
        #expect(try await ledger.renewLease(owner: "a") == false, "a first lease was not held before")
        #expect(try await ledger.renewLease(owner: "a") == true)
        #expect(try await ledger.rescue(owner: "a") == nil, "alive: not rescued")
        #expect(try await ledger.liveOwners() == ["a"])
        try await TestServer.execute("UPDATE leases SET expires_at = clock_timestamp() - interval '1 second' WHERE owner = 'a'", in: url)
        #expect(try await ledger.liveOwners().isEmpty, "lapsed by the database's clock")
        #expect(try await ledger.rescue(owner: "a") == 1)
        #expect(try await ledger.rescue(owner: "a") == 0, "nothing left; no lease")
        let requeued = try #require(try await ledger.request(id: "r1"))
        #expect(requeued.state == .queued && requeued.attempts == 0 && requeued.owner == nil)
        #expect(try await ledger.finish(id: "r1", owner: "a", result: .succeeded, now: LedgerConformance.at(2)) == nil, "fenced")
        #expect(try await ledger.renewLease(owner: "a") == false, "the lease had lapsed")
    }
}
