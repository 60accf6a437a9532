import Glibc
import SpoolSystem

/// Opening claimed payloads for executors, safely.
public enum PayloadFile {
    /// Opens the regular file at `path` for reading and returns its descriptor (blocking mode,
    /// close-on-exec); the caller closes it.
    ///
    /// Never follows a final symbolic link (`O_NOFOLLOW`) and never blocks on a FIFO (it is
    /// opened `O_NONBLOCK`, checked with `fstat`, and only a regular file gets its blocking mode
    /// back). Anything else is refused with `SpoolStoreError.Code.notRegularFile`.
    public static func openForReading(_ path: String) throws -> Int32 {
        let fd: Int32
        do {
            fd = try StoreCall.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
        } catch let error as SpoolStoreError where error.errno == ELOOP {
            throw SpoolStoreError.notRegularFile(path, kind: PayloadKind.symlink.description)
        }
        do {
            var info = stat()
            try StoreCall.call("fstat", path: path) { fstat(fd, &info) }
            guard info.isRegularFile else {
                throw SpoolStoreError.notRegularFile(path, kind: PayloadKind(info).description)
            }
            let flags = try StoreCall.call("fcntl(F_GETFL)", path: path) { fcntl(fd, F_GETFL) }
            try StoreCall.call("fcntl(F_SETFL)", path: path) { fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
            return fd
        } catch {
            try? StoreCall.close(fd)
            throw error
        }
    }
}
