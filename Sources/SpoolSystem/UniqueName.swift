import Synchronization

/// A name no other file of the root will have: this process's 64 random bits (drawn once) and
/// a counter, in hex. Foundation's `UUID()` opens and reads `/dev/urandom` on every call on
/// Linux, and each random draw is a `getrandom(2)`; the trash and the folder pool name a file
/// or two per request.
public enum UniqueName {
    private static let prefix: String = {
        let bits = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        return String(repeating: "0", count: 16 - bits.count) + bits
    }()
    private static let counter = Atomic<UInt64>(0)

    public static func make() -> String {
        prefix + "-" + String(counter.add(1, ordering: .relaxed).newValue, radix: 16)
    }
}
