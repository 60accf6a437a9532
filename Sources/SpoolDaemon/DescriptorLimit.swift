#if canImport(Glibc)
import Glibc
#endif

/// The process's limit on open descriptors (`RLIMIT_NOFILE`).
public enum DescriptorLimit {
    /// Raises the soft limit to the hard one (a daemon serving many connections and files needs
    /// them; systemd's default soft limit is 1,024) and returns the soft limit now in force.
    @discardableResult
    public static func raise() -> Int {
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return current
    }

    /// The soft limit in force.
    public static var current: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return Int(clamping: limit.rlim_cur)  // RLIM_INFINITY (all ones) clamps to Int.max
    }

    /// Descriptors kept for the queue itself (payloads, outputs, the ledger, models' pipes)
    /// when the HTTP API sizes its connection limit.
    public static let reserved = 256

    /// The HTTP API's connection limit for a soft limit of `descriptors`: half of what is left
    /// beyond `reserved`, at least 16.
    public static func connections(for descriptors: Int) -> Int {
        max(16, min(100_000, (descriptors - reserved) / 2))
    }
}
