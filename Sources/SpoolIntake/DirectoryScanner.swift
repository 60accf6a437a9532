import Glibc
import SpoolCore

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
                guard let name = String(validatingCString: cName) else { return }
                let childRelative = joinRelative(relative, name)
                if FileTree.isDirectory(type: type, path: absolute + "/" + name) {
                    if !DropRules.isIgnoredDirectory(name: name) { pending.append(childRelative) }
                } else if !DropRules.isIgnored(name: name) {
                    file(childRelative, type)
                }
            }
        }
    }
}
