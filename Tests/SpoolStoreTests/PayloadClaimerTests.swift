import Foundation
import Glibc
import SpoolCore
import Synchronization
import Testing
@testable import SpoolStore
import SpoolSystem
import SpoolTestSupport

@Suite struct PayloadClaimerTests {
    func candidate(_ path: String, endpoint: String = "default") -> IntakeCandidate {
        IntakeCandidate(endpoint: endpoint, relativePath: path)
    }

    @Test func aClaimRenamesThePayloadUnderItsTokenKeepingItsRelativePath() async throws {
        try await withTemporaryDirectory { root in
            let claimer = PayloadClaimer(layout: SpoolLayout(root: root))
            try writeFile(root + "/incoming/sub/dir/file.txt", "hello")

            let claimed = try #require(try claimer.claim(candidate("sub/dir/file.txt"), incomingDirectory: "incoming"))

            #expect(claimed.payloadPath == "\(root)/.spool/claimed/default/\(claimed.token)/sub/dir/file.txt")
            #expect(claimed.tokenDirectory == "\(root)/.spool/claimed/default/\(claimed.token)")
            #expect(claimed.kind == .regular(size: 5))
            #expect(claimed.sidecarPath == nil)
            #expect(claimed.relativePath == "sub/dir/file.txt")
            #expect(try readFile(claimed.payloadPath) == "hello")
            #expect(!exists(root + "/incoming/sub/dir/file.txt"))
            #expect(exists(root + "/incoming/sub/dir"))
            #expect(claimed.token.count == 26)

            // The same name claimed again: gone, and no empty token folder is left behind.
            #expect(try claimer.claim(candidate("sub/dir/file.txt"), incomingDirectory: root + "/incoming/") == nil)
            #expect(claimer.claimTokens(endpoint: "default") == [claimed.token])
        }
    }

    @Test func exactlyOneOfTwoRacingClaimersGetsEachPayload() async throws {
        try await withTemporaryDirectory { root in
            let layout = SpoolLayout(root: root)
            let claimers = [PayloadClaimer(layout: layout, owner: "one"), PayloadClaimer(layout: layout, owner: "two")]
            let count = 300
            for index in 0..<count { try writeFile(root + "/incoming/f\(index)") }

            let winners = try await withinTimeout(30) {
                (0..<count).map { index in
                    let results = Results()
                    DispatchQueue.concurrentPerform(iterations: 2) { which in
                        let claimed = try? claimers[which].claim(
                            IntakeCandidate(endpoint: "default", relativePath: "f\(index)"), incomingDirectory: "incoming")
                        results.add(claimed)
                    }
                    return results.claimed.count
                }
            }
            #expect(winners.allSatisfy { $0 == 1 })
            #expect(claimers[0].claimTokens(endpoint: "default").count == count)
        }
    }

    @Test func theSidecarMovesAlong() async throws {
        try await withTemporaryDirectory { root in
            let claimer = PayloadClaimer(layout: SpoolLayout(root: root))
            try writeFile(root + "/incoming/x.csv.meta.json", #"{"ContentType":"text/csv"}"#)
            try writeFile(root + "/incoming/x.csv", "a,b")

            let claimed = try #require(try claimer.claim(candidate("x.csv"), incomingDirectory: "incoming"))

            #expect(claimed.sidecarPath == claimed.tokenDirectory + "/.sidecar.json")
            #expect(try readFile(claimed.sidecarPath!) == #"{"ContentType":"text/csv"}"#)
            #expect(!exists(root + "/incoming/x.csv.meta.json"))
        }
    }

    @Test func linksAndFifosAreClassifiedWithoutBeingOpened() async throws {
        try await withTemporaryDirectory { root in
            let claimer = PayloadClaimer(layout: SpoolLayout(root: root))
            try writeFile(root + "/target/secret", "secret")
            try FileTree.makeDirectories(root + "/incoming")
            #expect(symlink(root + "/target/secret", root + "/incoming/file-link") == 0)
            #expect(symlink(root + "/target", root + "/incoming/folder-link") == 0)
            #expect(mkfifo(root + "/incoming/pipe", 0o644) == 0)

            // Opening a FIFO with no writer would block forever: bound the claim.
            let kinds = try await withinTimeout(10) {
                try ["file-link", "folder-link", "pipe"].map {
                    try claimer.claim(IntakeCandidate(endpoint: "default", relativePath: $0), incomingDirectory: "incoming")?.kind
                }
            }
            #expect(kinds == [.symlink, .symlink, .fifo])
            #expect(try readFile(root + "/target/secret") == "secret")
        }
    }

    @Test func oddNamesAndLongPathsAreClaimedVerbatim() async throws {
        let long = String(repeating: "d", count: 200)
        let names = ["with space", "new\nline", "ünïcødé-名前", "-leading-dash", "$(not a shell)", "\(long)/\(long)/" + String(repeating: "n", count: 255)]
        try await withTemporaryDirectory { root in
            let claimer = PayloadClaimer(layout: SpoolLayout(root: root))
            for name in names {
                try writeFile(root + "/incoming/" + name, name)
                let claimed = try #require(try claimer.claim(candidate(name), incomingDirectory: "incoming"))
                #expect(try readFile(claimed.payloadPath) == name)
                #expect(claimer.recover(endpoint: "default", token: claimed.token) == claimed)
            }
        }
    }

    @Test func pathsThatCouldEscapeAreRefused() async throws {
        try await withTemporaryDirectory { root in
            let claimer = PayloadClaimer(layout: SpoolLayout(root: root))
            for path in ["", "../x", "a/../../x", "a//b", "/abs", "a/.", ".sidecar.json"] {
                #expect(throws: SpoolStoreError.self) { try claimer.claim(candidate(path), incomingDirectory: "incoming") }
            }
            #expect(throws: SpoolStoreError.self) { try claimer.claim(candidate("x", endpoint: "../up"), incomingDirectory: "incoming") }
        }
    }

    @Test func adoptTakesASpoolWrittenFileIntoANewClaim() async throws {
        try await withTemporaryDirectory { root in
            let claimer = PayloadClaimer(layout: SpoolLayout(root: root), owner: "1234-ABC")
            try writeFile(root + "/.spool/partial/.upload", "body")
            let claimed = try claimer.adopt(file: root + "/.spool/partial/.upload", endpoint: "default", relativePath: "ID1")
            #expect(claimed.kind == .regular(size: 4))
            #expect(try readFile(claimed.payloadPath) == "body")
            #expect(PayloadClaimer.owner(ofToken: claimed.token) == "1234-ABC")
            #expect(PayloadClaimer.owner(ofToken: String(claimed.token.prefix(26))) == nil)
            #expect(throws: SpoolStoreError.self) {
                try claimer.adopt(file: root + "/.spool/partial/.upload", endpoint: "default", relativePath: "ID2")
            }
        }
    }
}

/// Claims made concurrently by `concurrentPerform`.
final class Results: Sendable {
    private let state = Mutex<[ClaimedPayload]>([])
    func add(_ claimed: ClaimedPayload?) { if let claimed { state.withLock { $0.append(claimed) } } }
    var claimed: [ClaimedPayload] { state.withLock { $0 } }
}
