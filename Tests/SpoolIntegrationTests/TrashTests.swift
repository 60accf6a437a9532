import CSpoolSystem
import Foundation
import Glibc
import SpoolCore
@testable import SpoolStore
import Testing

@testable import SpoolDaemon

/// Payload files recycled as output files: only when plainly Spool's to reuse, and never with
/// their old content.
@Suite struct TrashTests {
    final class Root {
        let path: String
        let layout: SpoolLayout
        let trash: Trash
        init() throws {
            path = FileManager.default.temporaryDirectory.path + "/spool-trash-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: path + "/.spool/partial", withIntermediateDirectories: true)
            layout = SpoolLayout(root: path)
            trash = Trash(layout: layout, folders: FolderPool(layout: layout))
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }

        /// A claim folder holding `name` with `contents`, as the claimer leaves it.
        func claim(_ token: String, _ name: String, _ contents: String, mode: mode_t = 0o600) throws -> (directory: String, payload: String) {
            let directory = path + "/.spool/claimed/default/" + token
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let payload = directory + "/" + name
            try Data(contents.utf8).write(to: URL(fileURLWithPath: payload))
            chmod(payload, mode)
            return (directory, payload)
        }
    }

    static func inode(_ path: String) -> ino_t {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_ino : 0
    }

    static func stats(_ fd: Int32) -> stat {
        var info = stat()
        fstat(fd, &info)
        return info
    }

    @Test func aSucceededPayloadBecomesTheNextOutputEmptiedAndWithTheOutputMode() throws {
        let root = try Root()
        let (directory, payload) = try root.claim("t1", "a.txt", "secret payload", mode: 0o400)
        let inode = Self.inode(payload)

        root.trash.discard(directory, payload: payload, bytes: 14, succeeded: true)
        #expect(!FileManager.default.fileExists(atPath: directory), "the token folder went to the pool")

        let partial = root.path + "/.spool/partial/t2.out"
        let fd = try #require(root.trash.recycle(to: partial))
        defer { close(fd) }
        let info = Self.stats(fd)
        #expect(info.st_ino == inode)
        #expect(info.st_size == 0, "the payload's content is gone")
        #expect(info.st_mode & 0o600 == 0o600 && info.st_mode & 0o777 & ~0o644 == 0, "0644 less the umask, not the payload's 0400")
        #expect(Self.inode(partial) == inode)
        #expect(root.trash.recycle(to: partial + "2") == nil, "nothing left to recycle")
    }

    @Test func recycledWithoutEmptyingItKeepsItsBlocksAndModeUntilItIsCut() throws {
        let root = try Root()
        let content = String(repeating: "old payload bytes ", count: 500)  // 9,000 bytes: three blocks
        let (directory, payload) = try root.claim("t1", "a.txt", content)
        root.trash.discard(directory, payload: payload, bytes: Int64(content.utf8.count), succeeded: true)

        let partial = root.path + "/.spool/partial/t2.out"
        let fd = try #require(root.trash.recycle(to: partial, emptied: false))
        defer { close(fd) }
        let info = Self.stats(fd)
        #expect(info.st_size == content.utf8.count && info.st_blocks > 0, "nothing freed: the writer cuts it to length")
        #expect(lseek(fd, 0, SEEK_CUR) == 0)
        #expect(info.st_mode & 0o777 == 0o600, "the claim's 0600 is kept while its old bytes are there")

        let output = Array("new output\n".utf8)
        #expect(output.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == output.count)
        try root.trash.cutRecycled(fd, path: partial)
        let cut = Self.stats(fd)
        #expect(cut.st_size == output.count)
        #expect(cut.st_mode & 0o600 == 0o600 && cut.st_mode & 0o777 & ~0o644 == 0, "the output mode once cut")
        #expect(try String(contentsOfFile: partial, encoding: .utf8) == "new output\n")
    }

    @Test func aPayloadWithAnotherLinkIsNeverRecycledNorTruncated() throws {
        let root = try Root()
        let (directory, payload) = try root.claim("t1", "linked.txt", "keep me")
        let elsewhere = root.path + "/the-users-copy"
        #expect(link(payload, elsewhere) == 0)

        root.trash.discard(directory, payload: payload, bytes: 7, succeeded: true)
        #expect(root.trash.recycle(to: root.path + "/.spool/partial/t2.out") == nil)
        #expect(try String(contentsOfFile: elsewhere, encoding: .utf8) == "keep me")

        root.trash.empty()
        #expect(try String(contentsOfFile: elsewhere, encoding: .utf8) == "keep me", "emptying the trash only unlinks it")
    }

    @Test func aPayloadWithExtendedAttributesOrFromAFailedRequestIsNotRecycled() throws {
        let root = try Root()
        let (directory, payload) = try root.claim("t1", "x.txt", "x")
        let value = "v"
        let set = spool_setxattr(payload, "user.spool-test", value, value.utf8.count)
        try #require(set == 0 || errno == ENOTSUP, "setxattr: \(String(cString: strerror(errno)))")
        root.trash.discard(directory, payload: payload, bytes: 1, succeeded: true)
        if set == 0 { #expect(root.trash.recycle(to: root.path + "/.spool/partial/t2.out") == nil) }

        let failed = try root.claim("t3", "y.txt", "y")
        root.trash.discard(failed.directory, payload: failed.payload, bytes: 1, succeeded: false)
        #expect(root.trash.recycle(to: root.path + "/.spool/partial/t4.out") == nil)
    }

    @Test func emptyingKeepsTheRecyclableFilesEmptyAndRemovesTheRest() throws {
        let root = try Root()
        let kept = try root.claim("t1", "k.txt", "old content")
        root.trash.discard(kept.directory, payload: kept.payload, bytes: 11, succeeded: true)
        let nested = try root.claim("t2", "n.txt", "nested")
        try FileManager.default.createDirectory(atPath: nested.directory + "/sub", withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: nested.payload, toPath: nested.directory + "/sub/n.txt")
        root.trash.discard(nested.directory, payload: nested.directory + "/sub/n.txt", bytes: 6, succeeded: true)

        root.trash.empty()

        let left = try FileManager.default.contentsOfDirectory(atPath: root.trash.path)
        #expect(left.count == 1)
        let info = try FileManager.default.attributesOfItem(atPath: root.trash.path + "/" + left[0])
        #expect((info[.size] as? Int) == 0)
        let fd = try #require(root.trash.recycle(to: root.path + "/.spool/partial/t9.out"))
        close(fd)
    }

    @Test func aStockOfEmptyFilesIsRecycledFirst() throws {
        let root = try Root()
        root.trash.stock(to: 2)
        root.trash.stock(to: 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.trash.path).count == 2)
        for i in 0..<2 {
            let fd = try #require(root.trash.recycle(to: root.path + "/.spool/partial/s\(i).out"))
            #expect(Self.stats(fd).st_size == 0)
            close(fd)
        }
        #expect(root.trash.recycle(to: root.path + "/.spool/partial/s2.out") == nil)
    }
}
