import Foundation
import Synchronization

/// Generates inference ids that are unique and sort by arrival: a ULID (48-bit milliseconds,
/// 80 random bits, Crockford base 32), monotonic within one process even inside one millisecond.
public final class InferenceIDGenerator: Sendable {
    private struct State {
        var lastMillis: UInt64 = 0
        var random: (UInt16, UInt64) = (0, 0)
    }

    private let state = Mutex(State())

    public init() {}

    public func next(now: Date = Date()) -> String {
        let millis = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        let (ms, hi, lo) = state.withLock { s -> (UInt64, UInt16, UInt64) in
            if millis > s.lastMillis {
                s.lastMillis = millis
                s.random = (UInt16.random(in: 0...UInt16.max), UInt64.random(in: 0...UInt64.max))
            } else {
                // Same (or earlier) millisecond: keep the time, increment the random part.
                let (lo, overflow) = s.random.1.addingReportingOverflow(1)
                s.random = (overflow ? s.random.0 &+ 1 : s.random.0, lo)
            }
            return (s.lastMillis, s.random.0, s.random.1)
        }
        return Self.encode(millis: ms, hi: hi, lo: lo)
    }

    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    static func encode(millis: UInt64, hi: UInt16, lo: UInt64) -> String {
        var out = [UInt8](repeating: 0, count: 26)
        // 10 characters of time (50 bits, top 2 zero).
        var t = millis
        for i in stride(from: 9, through: 0, by: -1) {
            out[i] = alphabet[Int(t & 31)]
            t >>= 5
        }
        // 16 characters of randomness: 80 bits = hi (16) + lo (64).
        var lowBits = lo
        var highBits = UInt64(hi)
        for i in stride(from: 25, through: 10, by: -1) {
            out[i] = alphabet[Int(lowBits & 31)]
            lowBits = (lowBits >> 5) | ((highBits & 31) << 59)
            highBits >>= 5
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Rules for user-given inference ids, the same for `spool invoke`, sidecars and HTTP:
/// SageMaker's (1–64 printable ASCII characters without spaces), and, because Spool names the
/// payload and the output of a submitted request after its id, no `/` and no leading `.`
/// (which refuses `.`, `..`, hidden names and the reserved `.sidecar.json`).
public enum InferenceIDRules {
    /// Why `id` is refused, or nil when it is valid.
    public static func validate(_ id: String) -> String? {
        if id.isEmpty || id.utf8.count > 64 { return "InferenceId must be 1 to 64 characters long" }
        if !id.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) {
            return "InferenceId must be printable ASCII without spaces"
        }
        if id.contains("/") { return "InferenceId must not contain \"/\": Spool names the output file after it" }
        if id.hasPrefix(".") { return "InferenceId must not start with \".\": Spool names the output file after it" }
        return nil
    }
}
