import Foundation

/// The spool root's folders and files. Paths inside the root are kept relative in the ledger so
/// that a root can be moved.
public struct SpoolLayout: Sendable, Equatable {
    public static let internalDirectory = ".spool"
    public static let claimedDirectory = ".spool/claimed"
    public static let partialDirectory = ".spool/partial"
    public static let locksDirectory = ".spool/locks"
    public static let ledgerFile = ".spool/ledger.sqlite"
    public static let eventsFile = "events.jsonl"
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
        "\(endpoint.outputsDirectory)/\(inputPath)\(outputSuffix)"
    }

    /// Error marker location of a request, relative to the root.
    public static func failureLocation(endpoint: EndpointConfig, inputPath: String) -> String {
        "\(endpoint.errorsDirectory)/\(inputPath)\(markerSuffix)"
    }
}
