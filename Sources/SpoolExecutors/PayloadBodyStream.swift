import NIOCore
import SpoolCore

#if canImport(Glibc)
import Glibc
import SpoolSystem
#endif

/// A payload read from its descriptor in `chunkBytes` pieces, as the body of an HTTP request.
///
/// The HTTP client asks for the next chunk only when it has sent the previous one, so at most a
/// chunk or two is in memory whatever the payload's size (back-pressure). Reads use `pread` from
/// offset 0, so the descriptor's own offset is neither needed nor moved. Chunks larger than
/// `inlineLimit` are read on a `BlockingIO` thread, so a slow disk never stalls the cooperative
/// pool; smaller ones come from the page cache faster than a thread hop.
///
/// Progress is reported as each chunk is handed to the client: the bytes sent (or being sent).
struct PayloadBodyStream: AsyncSequence, Sendable {
    typealias Element = ByteBuffer

    /// A failed read of the payload (as opposed to a failed connection).
    struct ReadError: Error {
        var error: SystemError
    }

    let descriptor: Int32
    let length: Int64
    let chunkBytes: Int
    let progress: @Sendable (Int64) -> Void
    static let inlineLimit = 256 * 1024

    struct AsyncIterator: AsyncIteratorProtocol {
        let stream: PayloadBodyStream
        var offset: Int64 = 0

        mutating func next() async throws -> ByteBuffer? {
            guard offset < stream.length else { return nil }
            try Task.checkCancellation()
            let count = Int(Swift.min(Int64(stream.chunkBytes), stream.length - offset))
            let descriptor = stream.descriptor
            let at = offset
            let buffer: ByteBuffer
            if count <= PayloadBodyStream.inlineLimit {
                buffer = try PayloadBodyStream.read(descriptor, at: at, count: count)
            } else {
                let result: Result<ByteBuffer, ReadError> = await BlockingIO.run { _ in
                    Result { () throws(ReadError) in try PayloadBodyStream.read(descriptor, at: at, count: count) }
                }
                buffer = try result.get()
            }
            offset += Int64(buffer.readableBytes)
            stream.progress(offset)
            return buffer
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(stream: self)
    }

    /// Reads `count` bytes at `offset` (fewer only at end of file; the HTTP client then reports
    /// the length mismatch).
    static func read(_ descriptor: Int32, at offset: Int64, count: Int) throws(ReadError) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        var failure: SystemError?
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { space in
            var done = 0
            while done < count {
                let rest = UnsafeMutableRawBufferPointer(rebasing: space[done..<count])
                do throws(SystemError) {
                    let n = try SystemCalls.read(descriptor, into: rest, at: offset + Int64(done))
                    if n == 0 { break }
                    done += n
                } catch {
                    failure = error
                    break
                }
            }
            return done
        }
        if let failure { throw ReadError(error: failure) }
        return buffer
    }
}
