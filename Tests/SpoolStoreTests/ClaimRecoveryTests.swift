import Foundation
import Glibc
import SpoolCore
import Testing
@testable import SpoolStore
import SpoolSystem
import SpoolTestSupport

@Suite struct ClaimRecoveryTests {
    @Test func aClaimIsRecoveredFromTheFilesystemAloneAfterACrash() async throws {
        try await withTemporaryDirectory { root in
            let layout = SpoolLayout(root: root)
            try writeFile(root + "/incoming/a/b/c.bin.meta.json", "{}")
            try writeFile(root + "/incoming/a/b/c.bin", "12345678")
            let claimed = try #require(
                try PayloadClaimer(layout: layout).claim(IntakeCandidate(endpoint: "default", relativePath: "a/b/c.bin"), incomingDirectory: "incoming"))

            // The process dies here, before recording the claim; a new one starts.
            let restarted = PayloadClaimer(layout: layout)
            #expect(restarted.claimTokens(endpoint: "default") == [claimed.token])
            #expect(restarted.recover(endpoint: "default", token: claimed.token) == claimed)
        }
    }

    @Test func aCrashBetweenThePayloadAndTheSidecarRenameIsCompletedOnRecovery() async throws {
        try await withTemporaryDirectory { root in
            let layout = SpoolLayout(root: root)
            // Simulated crash: the token folder holds the payload; its sidecar is still in incoming/.
            let token = InferenceIDGenerator().next()
            try writeFile(root + "/.spool/claimed/default/\(token)/sub/p.txt", "p")
            try writeFile(root + "/incoming/sub/p.txt.meta.json", "{}")

            let recovered = try #require(PayloadClaimer(layout: layout).recover(endpoint: "default", token: token, incomingDirectory: "incoming"))
            #expect(recovered.relativePath == "sub/p.txt")
            #expect(recovered.kind == .regular(size: 1))
            #expect(recovered.sidecarPath == "\(root)/.spool/claimed/default/\(token)/.sidecar.json")
            #expect(!exists(root + "/incoming/sub/p.txt.meta.json"))
        }
    }

    @Test func aTokenFolderWithoutPayloadRecoversToNothingAndCanBeRemoved() async throws {
        try await withTemporaryDirectory { root in
            let claimer = PayloadClaimer(layout: SpoolLayout(root: root))
            // Simulated crash after the folders were made, before the rename.
            let token = InferenceIDGenerator().next()
            try FileTree.makeDirectories(root + "/.spool/claimed/default/\(token)/a/b")
            #expect(claimer.recover(endpoint: "default", token: token) == nil)
            try claimer.remove(endpoint: "default", token: token)
            #expect(claimer.claimTokens(endpoint: "default").isEmpty)
            #expect(claimer.claimTokens(endpoint: "never-used").isEmpty)
        }
    }

    @Test func releaseRemovesTheTokenFolderButNeverFollowsLinks() async throws {
        try await withTemporaryDirectory { root in
            let claimer = PayloadClaimer(layout: SpoolLayout(root: root))
            try writeFile(root + "/precious/keep.txt", "keep")
            try FileTree.makeDirectories(root + "/incoming/d")
            #expect(symlink(root + "/precious", root + "/incoming/d/link") == 0)
            let claimed = try #require(try claimer.claim(IntakeCandidate(endpoint: "default", relativePath: "d/link"), incomingDirectory: "incoming"))
            // Another link inside the token folder, planted as if by a model writing there.
            #expect(symlink(root + "/precious", claimed.tokenDirectory + "/planted") == 0)

            claimer.release(claimed)

            #expect(!exists(claimed.tokenDirectory))
            #expect(try readFile(root + "/precious/keep.txt") == "keep")
        }
    }
}
