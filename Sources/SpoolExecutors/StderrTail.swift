import SpoolCore

/// The last `capacity` bytes of a stream, in a fixed ring: a model may write gigabytes to stderr,
/// and only the end of it (what it said just before failing) is kept as evidence.
///
/// Memory is `capacity` bytes whatever the stream's length; appending costs one or two copies
/// of at most `capacity` bytes however large the chunk is.
struct StderrTail {
    /// Most bytes kept (`ModelEvidence.tailBytes` by default).
    let capacity: Int
    private var ring: [UInt8]
    /// Where the next byte goes.
    private var head = 0
    /// Bytes held, up to `capacity`.
    private(set) var count = 0
    /// Every byte ever appended, including those dropped from the front.
    private(set) var totalBytes: Int64 = 0

    init(capacity: Int = ModelEvidence.tailBytes) {
        precondition(capacity > 0, "a tail holds at least one byte")
        self.capacity = capacity
        ring = [UInt8](repeating: 0, count: capacity)
    }

    /// Appends `chunk`, dropping the oldest bytes beyond `capacity`.
    mutating func append(_ chunk: UnsafeRawBufferPointer) {
        guard !chunk.isEmpty else { return }
        totalBytes += Int64(chunk.count)
        // Only the last `capacity` bytes of a large chunk can survive.
        let kept = chunk.count > capacity ? UnsafeRawBufferPointer(rebasing: chunk[(chunk.count - capacity)...]) : chunk
        let capacity = self.capacity
        var head = self.head
        ring.withUnsafeMutableBytes { ring in
            var offset = 0
            while offset < kept.count {
                let run = min(kept.count - offset, capacity - head)
                UnsafeMutableRawBufferPointer(rebasing: ring[head..<(head + run)])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: kept[offset..<(offset + run)]))
                offset += run
                head = (head + run) % capacity
            }
        }
        self.head = head
        count = min(capacity, count + kept.count)
    }

    mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// The bytes held, oldest first.
    var bytes: [UInt8] {
        guard count == capacity else { return Array(ring[0..<count]) }
        return Array(ring[head...] + ring[..<head])
    }

    /// The bytes held as text, decoded leniently (a multi-byte character cut at the front becomes
    /// U+FFFD); nil when nothing was written.
    var text: String? {
        count == 0 ? nil : String(decoding: bytes, as: UTF8.self)
    }
}
