import Foundation
import SpoolCore
import Synchronization

#if canImport(Glibc)
import Glibc
import SpoolSystem
#endif

/// One batch of a line-split payload: complete records `firstRecord...lastRecord` (1-based),
/// the payload bytes `start..<end`, copied into a file of its own.
struct LineBatch: Sendable {
    /// 1-based position among the request's batches.
    var number: Int
    var start: Int64
    var end: Int64
    var firstRecord: Int
    var lastRecord: Int
    /// The batch's copy of its records (read-only for the model), and a descriptor on it at 0.
    var inputPath: String
    var input: Int32
    /// An anonymous (already unlinked) file for the model's output on this batch.
    var output: Int32

    var bytes: Int64 { end - start }

    /// "records 2001–3000", or "record 7" for a batch of one.
    var recordRange: String {
        firstRecord == lastRecord ? "record \(firstRecord)" : "records \(firstRecord)–\(lastRecord)"
    }
}

/// Cuts a payload into batches of whole lines, reading it sequentially through one buffer of
/// `chunkBytes` (so memory does not depend on the payload's size), and writes each batch to a
/// file in `directory`.
///
/// A record is a line with its `\n`; a last line without one is a record too. A batch holds at
/// most `maxRecords` records and at most `maxBytes` bytes, except that a single record longer
/// than `maxBytes` becomes a batch of its own (the model decides whether it can take it).
/// Batches are greedy: a batch ends only when the next record would break a bound.
///
/// Not thread-safe: the executor uses it from one blocking-I/O call at a time.
final class LineBatcher: @unchecked Sendable {
    let input: Int32
    let maxBytes: Int64
    let maxRecords: Int
    let files: BatchFiles
    private let buffer: UnsafeMutableRawBufferPointer
    /// The payload offset of `buffer[0]`, and how many bytes of it are valid.
    private var bufferStart: Int64 = 0
    private var bufferCount = 0
    /// Where the next batch begins, and how many records came before it.
    private var offset: Int64 = 0
    private var recordsBefore = 0
    private var batches = 0

    init(input: Int32, chunkBytes: Int, maxBytes: Int, maxRecords: Int, files: BatchFiles) {
        self.input = input
        self.maxBytes = Int64(max(1, maxBytes))
        self.maxRecords = max(1, maxRecords)
        self.files = files
        buffer = .allocate(byteCount: max(4096, chunkBytes), alignment: 4096)
    }

    deinit { buffer.deallocate() }

    /// The next batch, written to its file; nil once the payload is used up.
    func next(cancelled: CancellationFlag) -> Result<LineBatch?, Failure> {
        let start = offset
        var position = start
        var records = 0
        var end = start
        scanning: while records < maxRecords {
            // The end of the record that begins at `position`.
            var recordEnd: Int64?
            while recordEnd == nil {
                if cancelled.isCancelled { return .failure(LineSplitExecutor.stopped) }
                if records > 0 && position - start > maxBytes { break scanning }
                if position < bufferStart || position >= bufferStart + Int64(bufferCount) {
                    do throws(SystemError) {
                        bufferStart = position
                        bufferCount = 0
                        bufferCount = try SystemCalls.read(input, into: buffer, at: position)
                    } catch {
                        return .failure(Failure(.inputUnreadable, "The payload could not be read: \(error.description)."))
                    }
                    if bufferCount == 0 {
                        if position == end { break scanning }  // the payload ends after a newline
                        recordEnd = position  // a last line without a newline
                        break
                    }
                }
                let from = Int(position - bufferStart)
                if let newline = memchr(buffer.baseAddress! + from, 0x0A, bufferCount - from) {
                    recordEnd = bufferStart + Int64(buffer.baseAddress!.distance(to: newline)) + 1
                } else {
                    position = bufferStart + Int64(bufferCount)
                }
            }
            guard let recordEnd else { break }
            if records > 0 && recordEnd - start > maxBytes { break }
            records += 1
            end = recordEnd
            position = recordEnd
        }
        if records == 0 { return .success(nil) }
        batches += 1
        let batch: LineBatch
        do throws(SystemError) {
            let (path, input, output) = try files.create(number: batches)
            try copy(from: start, count: end - start, to: input, cancelled: cancelled)
            guard lseek(input, 0, SEEK_SET) == 0 else { throw SystemError(call: "lseek", errno: errno) }
            batch = LineBatch(
                number: batches, start: start, end: end, firstRecord: recordsBefore + 1,
                lastRecord: recordsBefore + records, inputPath: path, input: input, output: output
            )
        } catch {
            if cancelled.isCancelled { return .failure(LineSplitExecutor.stopped) }
            return .failure(Failure(.outputWriteFailed, "Batch \(batches) could not be written to \(files.directory): \(error.description)."))
        }
        offset = end
        recordsBefore += records
        return .success(batch)
    }

    /// Copies payload bytes `start..<start+count` to `destination`: in the kernel when it can,
    /// else through the buffer (which then no longer holds scanned bytes).
    private func copy(from start: Int64, count: Int64, to destination: Int32, cancelled: CancellationFlag) throws(SystemError) {
        guard lseek(input, off_t(start), SEEK_SET) == off_t(start) else { throw SystemError(call: "lseek", errno: errno) }
        var left = count
        while left > 0 {
            if cancelled.isCancelled { throw SystemError(call: "copy", errno: ECANCELED) }
            let n: Int
            do {
                n = try SystemCalls.copyRange(from: input, to: destination, count: Int(min(left, 8 << 20)))
            } catch where [EXDEV, EINVAL, ENOSYS, EOPNOTSUPP].contains(error.errno) {
                bufferCount = 0
                let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(min(left, Int64(buffer.count)))])
                n = try SystemCalls.read(input, into: piece)
                try SystemCalls.writeAll(destination, UnsafeRawBufferPointer(rebasing: piece[0..<n]))
            }
            if n == 0 { throw SystemError(call: "read (the payload shrank while it was split)", errno: EIO) }
            left -= Int64(n)
        }
    }
}

/// The batch files of one invocation, named `<prefix>.batch<N>` in `directory`; whatever is
/// still open or present is closed and removed by `removeAll`.
final class BatchFiles: Sendable {
    let directory: String
    let prefix: String
    private let open = Mutex<[Int: (path: String, fds: [Int32])]>([:])

    init(directory: String, prefix: String) {
        self.directory = directory
        self.prefix = prefix
    }

    /// Creates batch `number`'s input file (read-write, at its start) and its anonymous output file.
    func create(number: Int) throws(SystemError) -> (path: String, input: Int32, output: Int32) {
        let path = "\(directory)/\(prefix).batch\(number)"
        let input = Glibc.open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard input >= 0 else { throw SystemError(call: "open", errno: errno) }
        open.withLock { $0[number] = (path, [input]) }
        let outputPath = path + ".out"
        let output = Glibc.open(outputPath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw SystemError(call: "open", errno: errno) }
        _ = unlink(outputPath)
        open.withLock { $0[number]?.fds.append(output) }
        return (path, input, output)
    }

    /// Closes and removes batch `number`'s files.
    func remove(number: Int) {
        guard let entry = open.withLock({ $0.removeValue(forKey: number) }) else { return }
        for fd in entry.fds { close(fd) }
        _ = unlink(entry.path)
    }

    func removeAll() {
        for number in open.withLock({ Array($0.keys) }) { remove(number: number) }
    }

    /// Removes batch files an earlier, interrupted attempt with the same prefix left behind.
    func removeLeftovers() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where name.hasPrefix(prefix + ".batch") {
            _ = unlink("\(directory)/\(name)")
        }
    }
}
