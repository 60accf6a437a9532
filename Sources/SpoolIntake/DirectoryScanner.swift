import Glibc
import SpoolCore
import SpoolSystem

/// A recursive walk of one endpoint's drop folder that finds payload candidates.
///
/// Every entry that is not a folder and whose name `DropRules.isIgnored(name:)` accepts is a
/// candidate — symbolic links, FIFOs and devices included (the claimer classifies them). Folders
/// with hidden or temporary names are skipped; symbolic links to folders are yielded as entries,
/// never descended into. A folder that vanishes mid-walk (claimed or deleted) is skipped quietly.
public struct DirectoryScanner: Sendable {
    /// The endpoint candidates are reported for.
    public let endpoint: String
    /// The drop folder, absolute.
    public let directory: String

    public init(endpoint: String, directory: String) {
        let folder = DropFolder(endpoint: endpoint, directory: directory)
        self.endpoint = folder.endpoint
        self.directory = folder.directory
    }

    /// All candidates in the drop folder `directory` of `endpoint` (`spool drain`'s one scan).
    public static func scan(endpoint: String, directory: String) -> [IntakeCandidate] {
        DirectoryScanner(endpoint: endpoint, directory: directory).scan()
    }

    /// All candidates in the drop folder, each once it has settled (`spool drain`'s scan): a
    /// regular file modified less than `settle` seconds ago may still be being written (a scan
    /// cannot see a close), so it is reported once unchanged for `settle` seconds. One still
    /// changing after `limit` is left for the next scan.
    public static func settledScan(
        endpoint: String, directory: String, settle: Double = 1, limit: Duration = .seconds(30)
    ) async -> [IntakeCandidate] {
        let scanner = DirectoryScanner(endpoint: endpoint, directory: directory)
        func signature(_ candidate: IntakeCandidate) -> FileSignature? {
            (try? SystemCall.lstat(scanner.directory + "/" + candidate.relativePath)).flatMap(FileSignature.init(regularFile:))
        }
        var settling = SettlingFiles(settle: settle)
        var ready = scanner.scan().filter { settling.admit($0, signature: signature($0), now: FileSignature.now()) }
        let deadline = ContinuousClock.now + limit
        while !settling.pending.isEmpty && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(Int(settle * 1000)))
            ready += settling.check(now: FileSignature.now(), observe: signature)
        }
        return ready
    }

    /// All candidates under `subdirectory` (relative to the drop folder; empty for all of it).
    ///
    /// `onError` hears about folders that exist but cannot be read (permissions, I/O errors).
    public func scan(
        under subdirectory: String = "",
        onError: (SpoolIntakeError) -> Void = { _ in }
    ) -> [IntakeCandidate] {
        var found: [IntakeCandidate] = []
        walk(under: subdirectory, onError: onError, enteringDirectory: { _ in }) { relativePath, _ in
            found.append(IntakeCandidate(endpoint: endpoint, relativePath: relativePath))
        }
        return found
    }

    /// Walks the folder tree below `subdirectory`, depth first.
    ///
    /// `enteringDirectory` runs for each folder (relative path) before it is listed — the inotify
    /// intake adds its watch there, so nothing created after the listing is missed.
    /// `file` runs for each candidate with its relative path and `d_type`.
    func walk(
        under subdirectory: String,
        onError: (SpoolIntakeError) -> Void,
        enteringDirectory: (String) -> Void,
        file: (String, UInt8) -> Void
    ) {
        var pending = [subdirectory]
        // An entry renamed to a UTF-8 name (see `renameToUTF8`) may be listed again under it.
        while let relative = pending.popLast() {
            enteringDirectory(relative)
            let absolute = relative.isEmpty ? directory : directory + "/" + relative
            let stream: OpaquePointer
            do {
                stream = try SystemCall.pointer("opendir", path: absolute) { opendir(absolute) }
            } catch let error as SpoolIntakeError {
                if !error.isNotFound { onError(error) }
                continue
            } catch {
                continue
            }
            FileTree.forEachEntry(of: stream) { cName, type in
                guard let name = String(validatingCString: cName) ?? Self.renameToUTF8(cName, in: absolute) else { return }
                let childRelative = FileTree.join(relative, name)
                if FileTree.isDirectory(type: type, path: absolute + "/" + name) {
                    if !DropRules.isIgnoredDirectory(name: name) { pending.append(childRelative) }
                } else if !DropRules.isIgnored(name: name) {
                    file(childRelative, type)
                }
            }
        }
    }

    /// Gives an entry whose name is not valid UTF-8 (which no `String` path can name, so it would
    /// stay in `incoming/` for good) a name that is: each byte that is not part of valid UTF-8
    /// becomes `%XX`. Returns the new name, or nil when the rename failed (logged by the caller's
    /// next scan finding it again) or the new name is taken.
    static func renameToUTF8(_ raw: UnsafePointer<CChar>, in directory: String) -> String? {
        let bytes = Array(UnsafeBufferPointer(start: raw, count: strlen(raw))).map { UInt8(bitPattern: $0) }
        let name = percentEscapingInvalidUTF8(bytes)
        let parent = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard parent >= 0 else { return nil }
        defer { close(parent) }
        // Never over an entry that already has the new name.
        var existing = stat()
        guard fstatat(parent, name, &existing, AT_SYMLINK_NOFOLLOW) != 0, errno == ENOENT else { return nil }
        return renameat(parent, raw, parent, name) == 0 ? name : nil
    }

    /// `bytes` as UTF-8, with every byte that does not belong to a valid sequence as `%XX`.
    static func percentEscapingInvalidUTF8(_ bytes: [UInt8]) -> String {
        var out = ""
        var index = 0
        while index < bytes.count {
            var matched = false
            for length in (1...4).reversed() where index + length <= bytes.count {
                if let text = String(validating: bytes[index..<index + length], as: UTF8.self), text.unicodeScalars.count == 1 {
                    out += text
                    index += length
                    matched = true
                    break
                }
            }
            if !matched {
                out += String(format: "%%%02X", bytes[index])
                index += 1
            }
        }
        return out
    }
}
