import Glibc
import SpoolSystem

/// What a claimed entry is, from `lstat` (links are never followed, FIFOs never opened).
public enum PayloadKind: Sendable, Equatable, CustomStringConvertible {
    /// A regular file of `size` bytes: the only kind an executor reads.
    case regular(size: Int64)
    /// A symbolic link (to anything, even a folder).
    case symlink
    /// A named pipe.
    case fifo
    /// A folder (a file name replaced by a folder between discovery and claim).
    case directory
    /// A device or a socket.
    case other

    /// Classifies `lstat` output.
    init(_ info: stat) {
        switch info.fileType {
        case S_IFREG: self = .regular(size: Int64(info.st_size))
        case S_IFLNK: self = .symlink
        case S_IFIFO: self = .fifo
        case S_IFDIR: self = .directory
        default: self = .other
        }
    }

    /// For failure reasons: "a regular file", "a symbolic link", ….
    public var description: String {
        switch self {
        case .regular: "a regular file"
        case .symlink: "a symbolic link"
        case .fifo: "a FIFO"
        case .directory: "a directory"
        case .other: "a device or socket"
        }
    }
}

/// A payload moved out of `incoming/` into its own token folder under `.spool/claimed/`.
///
/// Layout: `.spool/claimed/<endpoint>/<token>/<relative path>`, plus `.sidecar.json` in the token
/// folder when a `NAME.meta.json` sidecar came along. Keeping the relative path below the token
/// makes a claim recoverable from the filesystem alone (`PayloadClaimer.recover`).
public struct ClaimedPayload: Sendable, Equatable {
    /// The endpoint whose drop folder it came from.
    public var endpoint: String
    /// The claim's unique, arrival-sorted token (a ULID).
    public var token: String
    /// The path it had below the drop folder, `/`-separated.
    public var relativePath: String
    /// What the claimed entry is; only `.regular` should be read.
    public var kind: PayloadKind
    /// Absolute path of the metadata sidecar, if one was dropped. Normally the token folder's
    /// `.sidecar.json`; if it could not be moved there, its path in the drop folder.
    public var sidecarPath: String?
    /// Absolute path of the claimed entry.
    public var payloadPath: String
    /// Absolute path of the token folder that `release` removes.
    public var tokenDirectory: String

    public init(
        endpoint: String, token: String, relativePath: String, kind: PayloadKind,
        sidecarPath: String?, payloadPath: String, tokenDirectory: String
    ) {
        self.endpoint = endpoint
        self.token = token
        self.relativePath = relativePath
        self.kind = kind
        self.sidecarPath = sidecarPath
        self.payloadPath = payloadPath
        self.tokenDirectory = tokenDirectory
    }
}
