import Glibc
import SpoolCore
import SpoolSystem

/// Finding claims again after a restart, and removing them when done.
extension PayloadClaimer {
    /// The token folders of `endpoint`, oldest first (tokens sort by creation time).
    public func claimTokens(endpoint: String) -> [String] {
        guard let directory = try? claimedDirectory(endpoint),
              let entries = try? StoreCall.entries(of: directory) else { return [] }
        return entries
            .filter { FileTree.isDirectory(type: $0.type, path: directory + "/" + $0.name) }
            .map(\.name)
            .sorted()
    }

    /// Rebuilds the `ClaimedPayload` of a token folder left by an earlier process (or a crash).
    ///
    /// The payload is the one entry that is not `.sidecar.json`, found by walking down single
    /// sub-folders without following links. Returns `nil` for a token folder with no payload
    /// (a crash before the rename: remove it with `remove(endpoint:token:)`) or an unexpected
    /// shape. With `incomingDirectory`, a sidecar left behind by a crash between the payload's
    /// rename and the sidecar's is fetched now.
    public func recover(endpoint: String, token: String, incomingDirectory: String? = nil) -> ClaimedPayload? {
        guard let endpointDirectory = try? claimedDirectory(endpoint),
              (try? Self.checkName(token, what: "token")) != nil else { return nil }
        let tokenDirectory = endpointDirectory + "/" + token
        var relative = ""
        var current = tokenDirectory
        while true {
            guard var entries = try? StoreCall.entries(of: current) else { return nil }
            if relative.isEmpty { entries.removeAll { $0.name == Self.sidecarName } }
            guard entries.count == 1, let name = entries.first?.name else { return nil }
            let path = current + "/" + name
            relative = FileTree.join(relative, name)
            guard let info = try? StoreCall.lstat(path) else { return nil }
            if info.isDirectory {
                current = path
                continue
            }
            var sidecar: String? = tokenDirectory + "/" + Self.sidecarName
            if (try? StoreCall.lstat(sidecar!)) == nil {
                sidecar = incomingDirectory.flatMap {
                    moveSidecar(from: absolute($0) + "/" + relative + SpoolLayout.sidecarSuffix, into: tokenDirectory)
                }
            }
            return ClaimedPayload(
                endpoint: endpoint, token: token, relativePath: relative, kind: PayloadKind(info),
                sidecarPath: sidecar, payloadPath: path, tokenDirectory: tokenDirectory
            )
        }
    }

    /// Removes a finished claim's token folder (payload, sidecar and all), never following links.
    /// Failures are ignored; use `remove(endpoint:token:)` to see them.
    public func release(_ claimed: ClaimedPayload) {
        try? remove(endpoint: claimed.endpoint, token: claimed.token)
    }

    /// Removes the token folder `token` of `endpoint`, like `rm -rf` but never following links.
    /// A token folder already gone is not an error.
    public func remove(endpoint: String, token: String) throws {
        try Self.checkName(token, what: "token")
        try StoreCall.removeTree(try claimedDirectory(endpoint) + "/" + token)
    }
}
