import Foundation
import SpoolCore
import SpoolIntake

#if canImport(Glibc)
import Glibc
#endif

extension SpoolEngine {
    /// Queues a payload read from `input` (a file or standard input) on `endpoint`, as
    /// `spool invoke` does. The payload is copied in bounded chunks to a temporary file, then
    /// renamed into a claim, so a crash never leaves a partial payload that looks complete.
    /// Its input path is the inference id, so its output is `outputs/<id>.out`.
    public func submit(from input: Int32, endpoint: EndpointConfig, metadata: RequestMetadata, source: RequestSource) async throws -> InferenceRequest? {
        let id = metadata.inferenceId ?? ids.next()
        var metadata = metadata
        metadata.inferenceId = id
        let temporary = layout.path("\(SpoolLayout.partialDirectory)/.\(id).submit")
        let fd = try Posix.open(temporary, O_WRONLY | O_CREAT | O_TRUNC)
        do {
            try copyStream(from: input, to: fd, chunkBytes: endpoint.chunkBytes, path: temporary)
            try Posix.fsync(fd, temporary)
            close(fd)
        } catch {
            close(fd)
            _ = unlink(temporary)
            throw error
        }
        let claimed = try claimer.adopt(file: temporary, endpoint: endpoint.name, relativePath: id)
        return await record(claimed, endpoint: endpoint, source: source, metadata: metadata)
    }

    private func copyStream(from input: Int32, to output: Int32, chunkBytes: Int, path: String) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkBytes, alignment: 4096)
        defer { buffer.deallocate() }
        while true {
            let n = Glibc.read(input, buffer.baseAddress, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw Posix.Error(call: "read", path: "the payload", errno: errno)
            }
            if n == 0 { return }
            try Posix.writeAll(output, Data(bytesNoCopy: buffer.baseAddress!, count: n, deallocator: .none), path)
        }
    }
}
