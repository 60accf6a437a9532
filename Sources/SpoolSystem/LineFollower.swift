import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Reads complete lines appended to a file, following it across rotation (a new file under the
/// same name) and truncation, like `tail -F`.
public final class LineFollower {
    public let path: String
    private var fd: Int32 = -1
    private var inode: ino_t = 0
    private var partial = Data()

    public init(path: String) {
        self.path = path
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// The complete lines written since the last call (all of them, the first time).
    public func readAvailable() -> [Data] {
        var lines: [Data] = []
        if fd < 0 { reopen() }
        guard fd >= 0 else { return [] }
        drain(into: &lines)
        // Rotated (another file now has the name) or truncated: finish the old one, start anew.
        var named = stat()
        var current = stat()
        let rotated = stat(path, &named) == 0 && named.st_ino != inode
        if fstat(fd, &current) == 0, current.st_size < lseek(fd, 0, SEEK_CUR) {
            lseek(fd, 0, SEEK_SET)
            partial = Data()
            drain(into: &lines)
        }
        if rotated {
            close(fd)
            fd = -1
            partial = Data()
            reopen()
            if fd >= 0 { drain(into: &lines) }
        }
        return lines
    }

    private func reopen() {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        var info = stat()
        fstat(fd, &info)
        inode = info.st_ino
    }

    private func drain(into lines: inout [Data]) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            guard let n = try? buffer.withUnsafeMutableBytes({ bytes throws(SystemError) in try SystemCalls.read(fd, into: bytes) }),
                  n > 0 else { break }
            partial.append(contentsOf: buffer[0..<n])
        }
        // One pass over the buffer, then one cut: copying the rest after every line would make a
        // large file's first read quadratic.
        var start = partial.startIndex
        while let newline = partial[start...].firstIndex(of: 0x0A) {
            let line = partial[start..<newline]
            if !line.isEmpty { lines.append(Data(line)) }
            start = newline + 1
        }
        if start > partial.startIndex { partial = Data(partial[start...]) }
    }
}
