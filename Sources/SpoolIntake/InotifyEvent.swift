import Glibc
import SpoolSystem

/// One event read from an inotify descriptor.
struct InotifyEvent: Sendable, Equatable {
    /// The watch it came from; `-1` for `IN_Q_OVERFLOW`.
    var watch: Int32
    var mask: UInt32
    var cookie: UInt32
    /// The entry's name inside the watched folder; empty for events about the folder itself.
    /// `nil` when the name is not valid UTF-8 (such an entry cannot be named by a `String`).
    var name: String?

    func has(_ flag: Int32) -> Bool { mask & UInt32(bitPattern: flag) != 0 }
    var isDirectory: Bool { has(IN_ISDIR) }
    var isOverflow: Bool { has(IN_Q_OVERFLOW) }

    /// The size of the fixed part of `struct inotify_event` (wd, mask, cookie, len).
    static let headerSize = 16

    /// Decodes the events packed in `bytes`, as returned by one `read(2)`.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> [InotifyEvent] {
        var events: [InotifyEvent] = []
        var offset = 0
        while offset + headerSize <= bytes.count {
            let watch = bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self)
            let mask = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            let cookie = bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
            let nameStart = offset + headerSize
            guard nameStart + length <= bytes.count else { break }
            var name: String? = ""
            if length > 0 {
                // The name is NUL-padded to an alignment boundary.
                let raw = UnsafeRawBufferPointer(rebasing: bytes[nameStart..<(nameStart + length)])
                let used = raw.firstIndex(of: 0) ?? raw.count
                name = String(validating: raw[..<used], as: UTF8.self)
            }
            events.append(InotifyEvent(watch: watch, mask: mask, cookie: cookie, name: name))
            offset = nameStart + length
        }
        return events
    }
}

/// The inotify masks Spool watches folders with.
enum InotifyMask {
    /// Finished files (`IN_CLOSE_WRITE`, `IN_MOVED_TO`), new entries (`IN_CREATE`: folders to
    /// watch, and links/FIFOs that are never "closed"), and the folder itself going away.
    /// `IN_EXCL_UNLINK` ignores events of files already unlinked (claimed away).
    static let base = UInt32(bitPattern: IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF
        | IN_ONLYDIR | IN_EXCL_UNLINK)

    /// Sub-folders: never through a symbolic link.
    static let subfolder = base | UInt32(bitPattern: IN_DONT_FOLLOW)

    /// A drop folder itself may be a symbolic link to a folder elsewhere (e.g. on a data disk).
    static let dropFolder = base
}
