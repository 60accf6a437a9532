import Glibc
import SpoolCore

/// Path handling for claims: every name is checked before it reaches a system call.
extension PayloadClaimer {
    /// `.spool/claimed/<endpoint>`, refusing endpoint names that are not a single folder name.
    func claimedDirectory(_ endpoint: String) throws -> String {
        try Self.checkName(endpoint, what: "endpoint name")
        return layout.path(SpoolLayout.claimedDirectory) + "/" + endpoint
    }

    func absolute(_ directory: String) -> String {
        let path = directory.hasPrefix("/") ? directory : layout.path(directory)
        return path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// The components of a relative path; refuses anything that could leave its folder or
    /// collide with the token folder's own sidecar.
    static func components(of relativePath: String) throws -> [String] {
        let components = relativePath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        for component in components { try checkName(component, what: "path component", in: relativePath) }
        if components.first == sidecarName {
            throw SpoolStoreError.invalidPath(relativePath, reason: "\(sidecarName) is reserved")
        }
        return components
    }

    static func checkName(_ name: String, what: String, in whole: String? = nil) throws {
        if name.isEmpty || name == "." || name == ".." || name.contains("/") || name.utf8.contains(0) {
            throw SpoolStoreError.invalidPath(whole ?? name, reason: "\(name.debugDescription) is not a valid \(what)")
        }
    }
}
