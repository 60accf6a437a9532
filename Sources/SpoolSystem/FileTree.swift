import Glibc

/// Folder operations built on `SystemCalls`: listing, `mkdir -p`, and an `rm -rf` that never
/// follows symbolic links. Names are handled as raw bytes where it matters (removal), so an entry
/// whose name is not UTF-8 can still be deleted.
public enum FileTree {
    /// Joins a relative folder and a name with `/` (no leading slash for the top folder itself).
    public static func join(_ directory: String, _ name: String) -> String {
        directory.isEmpty ? name : directory + "/" + name
    }

    /// Calls `body` with each entry's NUL-terminated name and `d_type`, skipping `.` and `..`.
    /// Takes ownership of `directory` and closes it.
    public static func forEachEntry(
        of directory: OpaquePointer,
        _ body: (UnsafePointer<CChar>, UInt8) throws -> Void
    ) rethrows {
        defer { closedir(directory) }
        let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
        while let entry = readdir(directory) {
            let name = UnsafeRawPointer(entry).advanced(by: nameOffset).assumingMemoryBound(to: CChar.self)
            if name[0] == 0x2E && (name[1] == 0 || (name[1] == 0x2E && name[2] == 0)) { continue }
            try body(name, entry.pointee.d_type)
        }
    }

    /// The UTF-8 names in the folder at `path` with their `d_type`, in directory order.
    /// Names that are not valid UTF-8 are left out: they cannot be named by a `String` path.
    public static func entries(of path: String) throws(SystemError) -> [(name: String, type: UInt8)] {
        let directory = try SystemCalls.pointer("opendir", path: path) { opendir(path) }
        var result: [(name: String, type: UInt8)] = []
        forEachEntry(of: directory) { name, type in
            if let decoded = String(validatingCString: name) { result.append((decoded, type)) }
        }
        return result
    }

    /// Whether `type` (a `d_type`, or `DT_UNKNOWN` resolved with `lstat`) is a real folder.
    public static func isDirectory(type: UInt8, path: String) -> Bool {
        if Int(type) == Int(DT_DIR) { return true }
        if Int(type) != Int(DT_UNKNOWN) { return false }
        return (try? SystemCalls.lstat(path))?.isDirectory ?? false
    }

    /// `mkdir -p`: creates `path` and any missing parents; existing folders are fine.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(SystemError) {
        if (try? SystemCalls.lstat(path))?.isDirectory == true { return }
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + component
            if try !SystemCalls.mkdir(prefix, mode: mode) {
                // Something exists: fine if it is a folder (or a link to one, as `mkdir -p` does).
                var info = stat()
                try SystemCalls.retrying("stat", path: prefix) { fstatat(AT_FDCWD, prefix, &info, 0) }
                guard info.isDirectory else { throw SystemError(call: "mkdir", errno: ENOTDIR, path: prefix) }
            }
        }
    }

    /// `rm -rf path`: removes a file, a symbolic link (not its target) or a whole folder tree.
    /// Folders are opened with `O_NOFOLLOW`, so a link swapped in mid-way is unlinked, not entered.
    /// A missing `path` is not an error.
    public static func removeTree(_ path: String) throws(SystemError) {
        do {
            try SystemCalls.retrying("unlink", path: path) { unlink(path) }
            return
        } catch {
            if error.isNotFound { return }
            // A folder (Linux says EISDIR; POSIX allows EPERM): empty it below.
            guard error.errno == EISDIR || error.errno == EPERM else { throw error }
        }
        let fd = try SystemCalls.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        defer { try? SystemCalls.close(fd) }
        try removeContents(ofDirectory: fd, path: path)
        do {
            try SystemCalls.retrying("rmdir", path: path) { rmdir(path) }
        } catch {
            guard error.errno == ENOENT else { throw error }
        }
    }

    /// Removes everything inside the open folder `fd`, recursively, without following links.
    private static func removeContents(ofDirectory fd: Int32, path: String) throws(SystemError) {
        let copy = try SystemCalls.retrying("dup", path: path) { dup(fd) }
        let directory: OpaquePointer
        do {
            directory = try SystemCalls.pointer("fdopendir", path: path) { fdopendir(copy) }
        } catch {
            try? SystemCalls.close(copy)
            throw error
        }
        // Collect first: deleting while reading a directory stream is unspecified.
        var names: [[CChar]] = []
        FileTree.forEachEntry(of: directory) { name, _ in
            names.append(Array(UnsafeBufferPointer(start: name, count: strlen(name) + 1)))
        }
        for name in names {
            let display = path + "/" + String(decoding: name.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
            do {
                try SystemCalls.retrying("unlinkat", path: display) { unlinkat(fd, name, 0) }
                continue
            } catch {
                if error.errno == ENOENT { continue }
                guard error.errno == EISDIR || error.errno == EPERM else { throw error }
            }
            let child = try SystemCalls.retrying("openat", path: display) {
                openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            defer { try? SystemCalls.close(child) }
            try removeContents(ofDirectory: child, path: display)
            try SystemCalls.retrying("unlinkat", path: display) { unlinkat(fd, name, AT_REMOVEDIR) }
        }
    }
}
