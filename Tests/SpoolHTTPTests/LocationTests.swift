import Foundation
import Testing
@testable import SpoolHTTP

/// Result locations as `file://` URLs: the byte check that skips Foundation's encoder must agree
/// with it on every byte.
@Suite struct LocationTests {
    @Test func theFastPathAgreesWithFoundationOnEveryByte() {
        for byte in UInt8(0x01)...UInt8(0x7F) {
            let text = String(decoding: [byte], as: UTF8.self)
            let foundation = text.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed)
            #expect(InputResolver.isURLPathAllowed(byte) == (foundation == text), "byte \(byte)")
        }
        #expect(!"é".utf8.contains(where: InputResolver.isURLPathAllowed), "non-ASCII bytes are encoded")
    }

    @Test func pathsAreEncodedAsFoundationEncodesThem() {
        for path in ["/srv/spool/outputs/a.txt.out", "/srv/spool/outputs/with space.out", "/r/ü/%41?#[].out", "/r/a+b=c;d@e.out", "/"] {
            let expected = "file://" + path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed)!
            #expect(InputResolver.fileURL(path) == expected, "\(path)")
        }
    }
}
