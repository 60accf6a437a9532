import Foundation
import SpoolCore
import SpoolSystem

/// Error markers: `errors/<input>.error.json`, written whole or not at all (to a temporary file
/// in `.spool/partial/`, made durable, renamed into place, its folder made durable).
public enum Markers {
    /// Writes `marker` at `path` (absolute), pretty-printed JSON with sorted keys and a final
    /// newline, so that `jq` and `grep` read it alike.
    public static func write(_ marker: ErrorMarker, to path: String, temporaryDirectory: String) throws(SpoolStoreError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data: Data
        do {
            data = try encoder.encode(marker)
        } catch {
            throw SpoolStoreError(code: .systemCall, message: "the marker could not be encoded: \(error)", path: path)
        }
        data.append(0x0A)
        do {
            try SystemCalls.writeAtomically(data, to: path, temporaryDirectory: temporaryDirectory)
        } catch {
            throw SpoolStoreError(error)
        }
    }
}
