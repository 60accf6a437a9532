/// One endpoint's drop folder, as the intake sources watch and scan it.
struct DropFolder: Sendable, Equatable {
    var endpoint: String
    /// Absolute path without a trailing slash.
    var directory: String

    init(endpoint: String, directory: String) {
        self.endpoint = endpoint
        var path = directory
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        self.directory = path
    }

    /// The absolute path of `relative` (a `/`-separated path below the drop folder; empty: itself).
    func path(_ relative: String) -> String {
        relative.isEmpty ? directory : directory + "/" + relative
    }

    static func from(_ folders: [(endpoint: String, directory: String)]) -> [DropFolder] {
        folders.map { DropFolder(endpoint: $0.endpoint, directory: $0.directory) }
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
