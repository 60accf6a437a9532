import CSpoolSystem
import Foundation

/// A message digest through the system's libcrypto (MD5, SHA-1, SHA-256).
final class EVPDigest {
    private let context: OpaquePointer

    init(_ algorithm: OpaquePointer?) {
        context = EVP_MD_CTX_new()
        EVP_DigestInit_ex(context, algorithm, nil)
    }

    static func md5() -> EVPDigest { EVPDigest(EVP_md5()) }
    static func sha1() -> EVPDigest { EVPDigest(EVP_sha1()) }
    static func sha256() -> EVPDigest { EVPDigest(EVP_sha256()) }

    deinit { EVP_MD_CTX_free(context) }

    func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        EVP_DigestUpdate(context, base, bytes.count)
    }

    func finish() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &digest, &length)
        return Array(digest.prefix(Int(length)))
    }
}

/// CRC-32 (zlib's, IEEE) and CRC-32C (Castagnoli, table-driven), big-endian bytes as S3 sends them.
struct CRC32: Sendable {
    var value: UInt32 = 0

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        value = UInt32(crc32(uLong(value), base.assumingMemoryBound(to: Bytef.self), uInt(bytes.count)))
    }

    var bytes: [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
}

struct CRC32C: Sendable {
    var value: UInt32 = 0xFFFF_FFFF

    static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        return crc
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var crc = value
        Self.table.withUnsafeBufferPointer { table in
            for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        }
        value = crc
    }

    var bytes: [UInt8] { withUnsafeBytes(of: (value ^ 0xFFFF_FFFF).bigEndian) { Array($0) } }
}

/// The checksums of one body: MD5 always (the ETag), and the one the client asked to be checked
/// (`x-amz-checksum-crc32|crc32c|sha1|sha256`, or the trailer an aws-chunked body names).
final class BodyChecksums {
    enum Algorithm: String, CaseIterable {
        case crc32, crc32c, sha1, sha256
        var header: String { "x-amz-checksum-\(rawValue)" }
    }

    let md5 = EVPDigest.md5()
    private var crc32: CRC32?
    private var crc32c: CRC32C?
    private var sha1: EVPDigest?
    private var sha256: EVPDigest?

    init(_ algorithms: Set<Algorithm>) {
        if algorithms.contains(.crc32) { crc32 = CRC32() }
        if algorithms.contains(.crc32c) { crc32c = CRC32C() }
        if algorithms.contains(.sha1) { sha1 = .sha1() }
        if algorithms.contains(.sha256) { sha256 = .sha256() }
    }

    func update(_ bytes: UnsafeRawBufferPointer) {
        md5.update(bytes)
        crc32?.update(bytes)
        crc32c?.update(bytes)
        sha1?.update(bytes)
        sha256?.update(bytes)
    }

    /// Finishes every digest; the values base64-encoded, by algorithm, and the MD5.
    func finish() -> (md5: [UInt8], values: [Algorithm: String]) {
        var values: [Algorithm: String] = [:]
        if let crc32 { values[.crc32] = Data(crc32.bytes).base64EncodedString() }
        if let crc32c { values[.crc32c] = Data(crc32c.bytes).base64EncodedString() }
        if let sha1 { values[.sha1] = Data(sha1.finish()).base64EncodedString() }
        if let sha256 { values[.sha256] = Data(sha256.finish()).base64EncodedString() }
        return (md5.finish(), values)
    }
}

extension Array where Element == UInt8 {
    var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(count * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
