import Foundation
import Glibc
import Testing

/// File helpers written with plain system calls, so that a "drop" is exactly what the test says:
/// one open–write–close, or a rename (Foundation's writes may go through temporary names).
enum Files {
    /// Writes `bytes` to `path` in one open–write–close.
    static func write(_ path: String, _ bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw HarnessError("open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw HarnessError("write \(path): \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    static func write(_ path: String, _ text: String) throws { try write(path, Array(text.utf8)) }

    /// Writes under a temporary name in the same folder, then renames into place.
    static func dropViaTemporary(_ path: String, _ bytes: [UInt8]) throws {
        let folder = (path as NSString).deletingLastPathComponent
        let temporary = folder + "/." + (path as NSString).lastPathComponent + ".tmp"
        try write(temporary, bytes)
        try rename(temporary, path)
    }

    static func rename(_ from: String, _ to: String) throws {
        guard Glibc.rename(from, to) == 0 else { throw HarnessError("rename \(from) → \(to): \(String(cString: strerror(errno)))") }
    }

    static func makeDirectories(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    static func read(_ path: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path).map { [UInt8]($0) }
    }

    static func text(_ path: String) -> String? {
        read(path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether something (even a dangling link) is at `path`.
    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    static func fileType(_ path: String) -> mode_t? {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_mode & S_IFMT : nil
    }

    /// Relative paths of everything that is not a folder below `folder` (links are not followed).
    static func files(under folder: String) -> [String] {
        var found: [String] = []
        walk(folder, "", into: &found)
        return found.sorted()
    }

    private static func walk(_ root: String, _ relative: String, into found: inout [String]) {
        guard let dir = opendir(relative.isEmpty ? root : root + "/" + relative) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            let child = relative.isEmpty ? name : relative + "/" + name
            if fileType(root + "/" + child) == S_IFDIR { walk(root, child, into: &found) } else { found.append(child) }
        }
    }

    /// Absolute paths of everything below `folder`, folders included (links are not followed).
    static func allPaths(under folder: String) -> [String] {
        var found: [String] = []
        guard let dir = opendir(folder) else { return [] }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            found.append(folder + "/" + name)
            if fileType(folder + "/" + name) == S_IFDIR { found += allPaths(under: folder + "/" + name) }
        }
        return found
    }

    /// How many non-folder entries are below `folder` (cheap enough to poll).
    static func count(under folder: String) -> Int { files(under: folder).count }

    /// The SHA-256 digest of a file, as `/usr/bin/sha256sum` computes it.
    static func sha256sum(_ path: String) throws -> String {
        let process = Process()
        let pipe = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.arguments = [path]
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let digest = String(decoding: output, as: UTF8.self).split(separator: " ").first else {
            throw HarnessError("sha256sum \(path) failed")
        }
        return String(digest)
    }
}

/// A deterministic, distinct payload: a readable header, then pseudo-random bytes.
func payload(_ index: Int, bytes: Int, tag: String = "payload") -> [UInt8] {
    let head = Array("\(tag) \(index)\n".utf8).prefix(bytes)
    var state = UInt64(truncatingIfNeeded: index) &* 0x9E37_79B9_7F4A_7C15 | 1
    // Into raw memory, not appended byte by byte: the tests are built unoptimised, and thousands
    // of payloads made that way held a thread every test's tasks share for seconds.
    return [UInt8](unsafeUninitializedCapacity: bytes) { buffer, initialized in
        _ = buffer.initialize(from: head)
        for offset in head.count..<max(bytes, head.count) {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            buffer[offset] = UInt8(truncatingIfNeeded: state >> 24)
        }
        initialized = bytes
    }
}

/// SHA-256 in plain Swift: the test's own oracle, independent of the product's libcrypto.
enum SHA256 {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    static func hex(_ message: [UInt8]) -> String {
        var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var data = message
        data.append(0x80)
        while data.count % 64 != 56 { data.append(0) }
        let bits = UInt64(message.count) * 8
        for shift in stride(from: 56, through: 0, by: -8) { data.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
        func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
        var w = [UInt32](repeating: 0, count: 64)
        for block in stride(from: 0, to: data.count, by: 64) {
            for i in 0..<16 {
                w[i] = (0..<4).reduce(0) { ($0 << 8) | UInt32(data[block + 4 * i + $1]) }
            }
            for i in 16..<64 {
                let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
                let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
                w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
            for i in 0..<64 {
                let t1 = hh &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ k[i] &+ w[i]
                let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
                (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
            for (i, v) in [a, b, c, d, e, f, g, hh].enumerated() { h[i] = h[i] &+ v }
        }
        return h.map { String(format: "%08x", $0) }.joined()
    }

    /// What the builtin `sha256` model writes for `message`.
    static func modelOutput(_ message: [UInt8]) -> String {
        #"{"sha256":"\#(hex(message))","bytes":\#(message.count)}"# + "\n"
    }
}
