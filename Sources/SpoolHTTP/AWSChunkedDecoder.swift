import NIOCore

/// Decodes a `Content-Encoding: aws-chunked` body as it streams in: `hex-size[;chunk-signature=…]\r\n`,
/// that many bytes, `\r\n`, …, a zero-size chunk, then trailer lines (`x-amz-checksum-crc32:…`)
/// and an empty line. This is what botocore sends for a streamed upload with a checksum; a server
/// that stored the framing as data would corrupt every such object.
struct AWSChunkedDecoder {
    enum Failure: Error { case malformed(String) }

    private enum State {
        case size
        case data(remaining: Int)
        case dataEnd
        case trailers
        case done
    }

    private var state = State.size
    private var line: [UInt8] = []
    /// Trailer headers, names lowercased.
    private(set) var trailers: [String: String] = [:]
    /// Decoded bytes so far.
    private(set) var decodedBytes = 0

    var isDone: Bool { if case .done = state { true } else { false } }

    /// Feeds `buffer`; calls `data` with each run of payload bytes.
    mutating func feed(_ buffer: ByteBuffer, _ data: (UnsafeRawBufferPointer) throws -> Void) throws {
        try buffer.withUnsafeReadableBytes { bytes in
            var index = 0
            while index < bytes.count {
                switch state {
                case .data(let remaining):
                    let take = min(remaining, bytes.count - index)
                    try data(UnsafeRawBufferPointer(rebasing: bytes[index..<(index + take)]))
                    decodedBytes += take
                    index += take
                    state = remaining - take == 0 ? .dataEnd : .data(remaining: remaining - take)
                case .done:
                    throw Failure.malformed("bytes after the final chunk")
                case .size, .dataEnd, .trailers:
                    let byte = bytes[index]
                    index += 1
                    guard byte == UInt8(ascii: "\n") else {
                        line.append(byte)
                        if line.count > 8192 { throw Failure.malformed("a chunk header or trailer longer than 8 KiB") }
                        continue
                    }
                    if line.last == UInt8(ascii: "\r") { line.removeLast() }
                    let text = String(decoding: line, as: UTF8.self)
                    line.removeAll(keepingCapacity: true)
                    try endOfLine(text)
                }
            }
        }
    }

    private mutating func endOfLine(_ text: String) throws {
        switch state {
        case .size:
            let hex = text.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard let size = Int(hex, radix: 16), size >= 0 else { throw Failure.malformed("a chunk size \(text.prefix(40).debugDescription)") }
            state = size == 0 ? .trailers : .data(remaining: size)
        case .dataEnd:
            guard text.isEmpty else { throw Failure.malformed("a chunk not followed by CRLF") }
            state = .size
        case .trailers:
            if text.isEmpty {
                state = .done
                return
            }
            guard let colon = text.firstIndex(of: ":") else { throw Failure.malformed("a trailer without a colon") }
            let name = text[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            trailers[name] = text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        case .data, .done:
            break
        }
    }

    /// Ends the body: the final chunk must have been seen (the empty line after trailers may be missing).
    mutating func finish() throws {
        switch state {
        case .done: return
        case .trailers where line.isEmpty: state = .done
        default: throw Failure.malformed("the body ended inside a chunk")
        }
    }
}

import Foundation
