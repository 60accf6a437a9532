import CSpoolSystem
import Foundation
import SpoolSystem

#if canImport(Glibc)
import Glibc
#endif

/// Outputs on their way from partial to visible: a model writes `.spool/partial/…`; a batch is
/// made durable (`makeDurable`), then put in place under its final names (`place`). The order is
/// the one docs/crash-safety.md argues for: bytes durable → rename → folder durable.
public enum OutputFiles {
    /// Makes the bytes of each open output durable, waiting for Spool's own data only: writeback
    /// of every output starts first (`sync_file_range`, no waiting), then each is flushed with
    /// `fdatasync`, which by then mostly waits for writes already under way. (`syncfs`, one flush
    /// for the batch, also waits for everything else dirty on the filesystem: a neighbour writing
    /// gigabytes there would stall every commit.) Closes every descriptor; -1 is skipped.
    /// - Returns: per output, the error that kept it from being durable (nil: durable).
    public static func makeDurable(_ outputs: [(descriptor: Int32, path: String)]) -> [SpoolStoreError?] {
        let open = outputs.indices.filter { outputs[$0].descriptor >= 0 }
        defer { for i in open { close(outputs[i].descriptor) } }
        if open.count > 1 {
            for i in open { _ = spool_start_writeback(outputs[i].descriptor) }
        }
        var errors = [SpoolStoreError?](repeating: nil, count: outputs.count)
        for i in open {
            do {
                try SystemCalls.fdatasync(outputs[i].descriptor, path: outputs[i].path)
            } catch {
                errors[i] = SpoolStoreError(error)
            }
        }
        return errors
    }

    /// One durable output to put in place.
    public struct Placement: Sendable {
        /// The partial file (removed when it cannot be placed).
        public var partial: String
        /// Its final name (absolute).
        public var destination: String
        /// The error marker an earlier attempt may have left for the same name (absolute):
        /// removed once the output is in place.
        public var staleMarker: String

        public init(partial: String, destination: String, staleMarker: String) {
            self.partial = partial
            self.destination = destination
            self.staleMarker = staleMarker
        }
    }

    /// Renames each output to its final name (making its folder if needed), then fsyncs each
    /// folder that gained one, then removes the stale markers of those names.
    /// - Returns: per output, the error that kept it from being in place durably (nil: placed).
    public static func place(_ outputs: [Placement]) -> [SpoolStoreError?] {
        var errors = [SpoolStoreError?](repeating: nil, count: outputs.count)
        var folders: [String: [Int]] = [:]
        for (i, output) in outputs.enumerated() {
            let folder = (output.destination as NSString).deletingLastPathComponent
            do throws(SystemError) {
                do throws(SystemError) {
                    try SystemCalls.rename(output.partial, output.destination)
                } catch {
                    // The folder is made when it is missing (first output there, or removed).
                    guard error.errno == ENOENT, folders[folder] == nil else { throw error }
                    try SystemCalls.makeDirectories(folder)
                    try SystemCalls.rename(output.partial, output.destination)
                }
                folders[folder, default: []].append(i)
            } catch {
                _ = unlink(output.partial)
                errors[i] = SpoolStoreError(error)
            }
        }
        for (folder, members) in folders {
            do {
                try SystemCalls.fsyncDirectory(folder)
            } catch {
                for i in members { errors[i] = SpoolStoreError(error) }
                continue
            }
            for i in members {
                do {
                    try SystemCalls.unlinkIfPresent(outputs[i].staleMarker)
                } catch {
                    errors[i] = SpoolStoreError(error)
                }
            }
        }
        return errors
    }
}
