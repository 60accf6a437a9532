/// A payload found in an endpoint's drop folder, not yet claimed.
public struct IntakeCandidate: Sendable, Equatable, Hashable {
    public var endpoint: String
    /// Path relative to the endpoint's `incoming/` folder, with `/` between components.
    public var relativePath: String

    public init(endpoint: String, relativePath: String) {
        self.endpoint = endpoint
        self.relativePath = relativePath
    }
}

/// Finds payloads in drop folders: by watching (inotify), or by scanning (`--poll`, `drain`).
///
/// `candidates()` yields each finished payload at least once (duplicates are harmless: a claim is
/// an atomic rename, so the second claim of one file finds nothing); the stream ends when the
/// source is stopped or its task cancelled.
public protocol IntakeSource: Sendable {
    func candidates() -> AsyncStream<IntakeCandidate>
}

/// Which names in a drop folder are payloads.
public enum DropRules {
    static let temporarySuffixes = [".tmp", ".part", ".partial", ".swp", "~"]

    /// Hidden and temporary names are never payloads (the drop contract), nor are sidecars.
    public static func isIgnored(name: String) -> Bool {
        name.hasPrefix(".") || temporarySuffixes.contains { name.hasSuffix($0) } || isSidecar(name: name)
    }

    /// A hidden or temporary folder name: such folders are neither watched nor scanned.
    public static func isIgnoredDirectory(name: String) -> Bool {
        name.hasPrefix(".") || temporarySuffixes.contains { name.hasSuffix($0) }
    }

    /// `NAME.meta.json`, the metadata sidecar of `NAME`.
    public static func isSidecar(name: String) -> Bool {
        name.hasSuffix(SpoolLayout.sidecarSuffix) && name.count > SpoolLayout.sidecarSuffix.count
    }
}
