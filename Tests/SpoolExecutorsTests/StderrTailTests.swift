import Testing
@testable import SpoolExecutors

@Suite struct StderrTailTests {
    @Test(arguments: [1, 7, 4095, 4096, 4097, 10_000])
    func keepsTheLastBytesWhateverTheChunks(chunk: Int) {
        let stream = pseudoRandomBytes(count: 50_000, seed: UInt64(chunk))
        var tail = StderrTail()
        var offset = 0
        var size = chunk
        while offset < stream.count {
            let end = min(stream.count, offset + size)
            tail.append(Array(stream[offset..<end]))
            #expect(tail.bytes == Array(stream[..<end].suffix(4096)))
            offset = end
            size = size % 5000 + chunk  // vary the chunk sizes
        }
        #expect(tail.totalBytes == 50_000)
    }

    @Test func emptyHasNoText() {
        var tail = StderrTail()
        #expect(tail.text == nil)
        tail.append(Array("oops\n".utf8))
        #expect(tail.text == "oops\n")
    }
}
