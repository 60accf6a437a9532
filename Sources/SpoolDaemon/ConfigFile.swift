import Foundation
import SpoolCore

/// Reads a root's `spool.toml` (the I/O `SpoolCore`'s `ConfigLoader` leaves to its callers).
public enum ConfigFile {
    /// The configuration of the spool at `layout`, or the defaults when it has no `spool.toml`;
    /// `SPOOL_LEDGER_URL` in `environment` wins over `[ledger] url`.
    public static func load(
        layout: SpoolLayout, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigError) -> SpoolConfig {
        let path = layout.configPath
        var text: String?
        if FileManager.default.fileExists(atPath: path) {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ConfigError(file: path, key: nil, reason: "cannot be read")
            }
            guard let decoded = String(data: data, encoding: .utf8) else {
                throw ConfigError(file: path, key: nil, reason: "is not UTF-8 text")
            }
            text = decoded
        }
        return try ConfigLoader.resolve(text: text, file: path, environment: environment)
    }
}
