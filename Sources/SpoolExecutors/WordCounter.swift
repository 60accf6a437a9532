/// Counts lines, words and bytes as `wc` does, across chunk boundaries.
struct WordCounter {
    private(set) var lines = 0
    private(set) var words = 0
    private(set) var bytes = 0
    private var inWord = false

    mutating func update(_ chunk: UnsafeRawBufferPointer) {
        bytes += chunk.count
        var lines = self.lines
        var words = self.words
        var inWord = self.inWord
        for byte in chunk {
            if byte == 0x0A { lines += 1 }
            // Spaces as the C locale's isspace: space, \t, \n, \v, \f, \r.
            let isSpace = byte == 0x20 || (byte >= 0x09 && byte <= 0x0D)
            if isSpace {
                inWord = false
            } else if !inWord {
                inWord = true
                words += 1
            }
        }
        self.lines = lines
        self.words = words
        self.inWord = inWord
    }

    var json: String { #"{"lines":\#(lines),"words":\#(words),"bytes":\#(bytes)}"# + "\n" }
}
