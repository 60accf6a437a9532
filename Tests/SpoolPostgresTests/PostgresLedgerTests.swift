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
