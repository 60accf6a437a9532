import Glibc
import SpoolCore

/// Claims payloads by renaming them out of their drop folder into a token folder under
/// `.spool/claimed/<endpoint>/`. The rename is the mutual exclusion between several Spool
/// processes sharing a root: exactly one of them moves a given file, the others find it gone.
///
/// Crash safety: the token folder is made first, then the payload is renamed into it under its
/// own relative path, then its sidecar follows. A crash at any point leaves either the payload
/// in `incoming/` (claimed again later) or a token folder that `recover` turns back into a
/// `ClaimedPayload`. Payloads are never opened here, so a FIFO cannot block a claim.
public final class PayloadClaimer: Sendable {
    /// The sidecar's name inside a token folder.
    public static let sidecarName = ".sidecar.json"

    /// The spool root.
    public let layout: SpoolLayout
    let ids: InferenceIDGenerator
    let syncsDirectories: Bool
    /// The claiming process's name, recorded in its tokens (`owner(ofToken:)`).
    public let owner: String?
    /// Where token folders come from when it has one to spare (otherwise they are made).
    public let folders: FolderPool?

    /// - Parameters:
    ///   - ids: the process's shared id generator (tokens are ULIDs).
    ///   - owner: the claiming process's name (letters, digits, `-`), appended to its tokens as
    ///     `<ULID>.<owner>` so that recovery can tell a live process's fresh claim from a dead
    ///     one's. Default: none (tokens are bare ULIDs).
    ///   - syncsDirectories: `fsync` the folders a claim changed before returning, so a claim
    ///     recorded in the ledger survives a power loss. Default true.
    ///   - folders: empty folders to reuse as token folders. Default: none (each is made).
    public init(
        layout: SpoolLayout, ids: InferenceIDGenerator = InferenceIDGenerator(), owner: String? = nil,
        syncsDirectories: Bool = true, folders: FolderPool? = nil
    ) {
        precondition(owner.map { !$0.isEmpty && $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" } } ?? true,
                     "owner must be letters, digits, - or _")
        self.layout = layout
        self.ids = ids
        self.owner = owner
        self.syncsDirectories = syncsDirectories
        self.folders = folders
    }

    static let ownerSeparator = "."

    /// The owner recorded in `token`, or `nil` for a token made without one.
    public static func owner(ofToken token: String) -> String? {
        guard let dot = token.firstIndex(of: Character(ownerSeparator)) else { return nil }
        let owner = token[token.index(after: dot)...]
        return owner.isEmpty ? nil : String(owner)
    }

    /// Moves `candidate` out of `incomingDirectory` (absolute, or relative to the root).
    ///
    /// - Returns: the claimed payload, or `nil` when it is no longer there (another process
    ///   claimed it, or it was deleted).
    /// - Throws: `SpoolStoreError` for an unusable path, a drop folder on another filesystem
    ///   than `.spool/` (`.crossDevice`), or another failing system call; nothing was moved then.
    public func claim(_ candidate: IntakeCandidate, incomingDirectory: String) throws -> ClaimedPayload? {
        let source = absolute(incomingDirectory) + "/" + candidate.relativePath
        guard let moved = try moveIntoNewToken(source, endpoint: candidate.endpoint, relativePath: candidate.relativePath) else {
            return nil
        }
        // From here on the payload is ours and sits in the token folder: never undo, never throw.
        let sidecar = moveSidecar(from: source + SpoolLayout.sidecarSuffix, into: moved.directory)
        return finish(moved, endpoint: candidate.endpoint, relativePath: candidate.relativePath, sidecar: sidecar, source: source)
    }

    /// Takes a file Spool wrote itself (`spool invoke`: a payload copied to a temporary file)
    /// into a new claim under `relativePath`, as if it had been dropped and claimed.
    ///
    /// - Throws: `SpoolStoreError` when `file` is missing or cannot be moved (it is left alone).
    public func adopt(file: String, endpoint: String, relativePath: String) throws -> ClaimedPayload {
        guard let moved = try moveIntoNewToken(file, endpoint: endpoint, relativePath: relativePath) else {
            throw SpoolStoreError.systemCall("rename", errno: ENOENT, path: file)
        }
        return finish(moved, endpoint: endpoint, relativePath: relativePath, sidecar: nil, source: file)
    }

    /// Makes a token folder and renames `source` into it under `relativePath`. Returns `nil`
    /// (and removes the token folder) when `source` is gone; throws (likewise) on other failures.
    private func moveIntoNewToken(
        _ source: String, endpoint: String, relativePath: String
    ) throws -> (token: String, directory: String, destination: String)? {
        let components = try Self.components(of: relativePath)
        let endpointDirectory = try claimedDirectory(endpoint)
        let token: String
        do {
            token = try makeTokenDirectory(in: endpointDirectory)
        } catch let error as SpoolStoreError where error.errno == ENOENT {
            // The endpoint's folder is made on its first claim (and again if someone removed it).
            try StoreCall.makeDirectories(endpointDirectory)
            token = try makeTokenDirectory(in: endpointDirectory)
        }
        let tokenDirectory = endpointDirectory + "/" + token
        let destination = tokenDirectory + "/" + relativePath
        do {
            if components.count > 1 {
                try StoreCall.makeDirectories(tokenDirectory + "/" + components.dropLast().joined(separator: "/"))
            }
            try StoreCall.rename(source, destination)
            return (token, tokenDirectory, destination)
        } catch let error as SpoolStoreError {
            try? StoreCall.removeTree(tokenDirectory)
            if error.isNotFound { return nil }
            if error.code == .crossDevice {
                throw SpoolStoreError(
                    code: .crossDevice,
                    message: "cannot claim \(source): it and \(layout.path(SpoolLayout.internalDirectory)) are on different filesystems, so the move cannot be atomic",
                    call: "rename", errno: EXDEV, path: source)
            }
            throw error
        }
    }

    /// Syncs the folders the claim changed and classifies the claimed entry.
    private func finish(
        _ moved: (token: String, directory: String, destination: String),
        endpoint: String, relativePath: String, sidecar: String?, source: String
    ) -> ClaimedPayload {
        if syncsDirectories { syncAfterClaim(source: source, destination: moved.destination, tokenDirectory: moved.directory) }
        let kind = (try? StoreCall.lstat(moved.destination)).map(PayloadKind.init) ?? .other
        return ClaimedPayload(
            endpoint: endpoint, token: moved.token, relativePath: relativePath, kind: kind,
            sidecarPath: sidecar, payloadPath: moved.destination, tokenDirectory: moved.directory
        )
    }

    /// Moves a `NAME.meta.json` along; returns where the sidecar now is (`nil`: there is none).
    func moveSidecar(from source: String, into tokenDirectory: String) -> String? {
        let destination = tokenDirectory + "/" + Self.sidecarName
        do {
            try StoreCall.rename(source, destination)
            return destination
        } catch let error as SpoolStoreError where error.isNotFound {
            return nil
        } catch {
            // ENAMETOOLONG (NAME.meta.json longer than NAME_MAX) and the like: there is none.
            // If it does exist but cannot be moved, point at it where it is; reading it decides.
            return (try? StoreCall.lstat(source)) == nil ? nil : source
        }
    }

    /// `fsync`s every folder the claim changed: the source's, then the destination's up to the
    /// endpoint's claimed folder (which gained the token folder).
    private func syncAfterClaim(source: String, destination: String, tokenDirectory: String) {
        try? StoreCall.fsyncDirectory(Self.parent(of: source))
        var directory = Self.parent(of: destination)
        while directory.count >= tokenDirectory.count {
            try? StoreCall.fsyncDirectory(directory)
            directory = Self.parent(of: directory)
        }
        try? StoreCall.fsyncDirectory(directory)
    }

    /// Makes a token folder under a fresh token (a pooled empty folder renamed, or `mkdir`) and
    /// returns its token. A token is never reused.
    private func makeTokenDirectory(in endpointDirectory: String) throws -> String {
        for _ in 0..<8 {
            let token = owner.map { ids.next() + Self.ownerSeparator + $0 } ?? ids.next()
            let path = endpointDirectory + "/" + token
            if folders?.take(to: path) == true { return token }
            if try StoreCall.mkdir(path, mode: 0o755) { return token }
        }
        throw SpoolStoreError.systemCall("mkdir", errno: EEXIST, path: endpointDirectory)
    }
}
