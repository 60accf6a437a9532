import Synchronization

/// The newest request (by arrival, `seq`) that published a result at each output path in this
/// process. With concurrency, two requests for one dropped name can finish out of order: the
/// older one must then neither replace the newer one's output nor leave its error marker beside
/// it. The newest request for a path wins.
final class NewestResults: Sendable {
    /// Paths remembered at most; past that the memory starts over (only requests for one path
    /// finishing out of order further apart than this many publications could then be missed).
    static let capacity = 65_536

    private let latest = Mutex<[String: Int64]>([:])

    init() {}

    /// Whether request `seq` may publish its result for `outputLocation` (no newer request for
    /// that path has); when it may, it is remembered as the newest.
    func mayPublish(_ outputLocation: String, seq: Int64) -> Bool {
        latest.withLock { map in
            if let newest = map[outputLocation], newest > seq { return false }
            if map.count >= Self.capacity, map[outputLocation] == nil { map.removeAll(keepingCapacity: true) }
            map[outputLocation] = seq
            return true
        }
    }
}
