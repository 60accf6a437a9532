import Foundation

/// The spool root's folders and files. Paths inside the root are kept relative in the ledger so
/// that a root can be moved.
public struct SpoolLayout: Sendable, Equatable {
    public static let internalDirectory = ".spool"
    public static let claimedDirectory = ".spool/claimed"
    public static let partialDirectory = ".spool/partial"
    public static let locksDirectory = ".spool/locks"
    /// Process groups of running models, one folder per owner (see `ProcessGroupRecord`).
    public static let groupsDirectory = ".spool/groups"
    public static let ledgerFile = ".spool/ledger.sqlite"
    /// Held by a retention batch and by `spool retry`, so that neither sees half of the other.
    public static let retentionLockFile = ".spool/retention.lock"
    public static let eventsFile = "events.jsonl"
    /// The models' logs (`<endpoint>.<instance>.log`, `<endpoint>.log`).
    public static let logsDirectory = "logs"
    public static let configFile = "spool.toml"
    public static let outputSuffix = ".out"
    public static let markerSuffix = ".error.json"
    public static let sidecarSuffix = ".meta.json"
    /// The root's own files, never a folder of an endpoint or a bucket.
    public static let rootFiles: Set<String> = [configFile, eventsFile]

    /// Absolute, standardized path of the root, without a trailing slash.
    public let root: String

    public init(root: String) {
        let absolute = root.hasPrefix("/") ? root : FileManager.default.currentDirectoryPath + "/" + root
        self.root = URL(fileURLWithPath: absolute).standardizedFileURL.path
    }

    /// The absolute path of `relative` inside the root.
    public func path(_ relative: String) -> String {
        relative.isEmpty ? root : root + "/" + relative
    }

    public var ledgerPath: String { path(Self.ledgerFile) }
    public var eventsPath: String { path(Self.eventsFile) }
    public var configPath: String { path(Self.configFile) }

    /// Output location of a request, relative to the root.
    public static func outputLocation(endpoint: EndpointConfig, inputPath: String) -> String {
        "\(endpoint.outputsDirectory)/\(fitting(inputPath, suffix: outputSuffix))"
    }

    /// Error marker location of a request, relative to the root.
    public static func failureLocation(endpoint: EndpointConfig, inputPath: String) -> String {
        "\(endpoint.errorsDirectory)/\(fitting(inputPath, suffix: markerSuffix))"
    }

    /// The longest file name Linux filesystems take, in bytes.
    public static let maxNameBytes = 255

    /// `path` + `suffix`, with the last component shortened when the name would be longer than
    /// `maxNameBytes`: its first bytes (whole characters), `~`, and 16 hex digits of a hash of
    /// the whole name, so that different long names stay different. Other names are unchanged.
    public static func fitting(_ path: String, suffix: String) -> String {
        let slash = path.lastIndex(of: "/")
        let folder = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard name.utf8.count + suffix.utf8.count > maxNameBytes else { return path + suffix }
        let tag = "~" + hexHash(name)
        let budget = maxNameBytes - suffix.utf8.count - tag.utf8.count
        var kept = ""
        for character in name {
            guard kept.utf8.count + String(character).utf8.count <= budget else { break }
            kept.append(character)
        }
        return folder + kept + tag + suffix
    }

    /// FNV-1a, 64 bits, as 16 hex digits: stable across runs and machines.
    static func hexHash(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let digits = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
