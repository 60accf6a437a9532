import SpoolCore

/// What a scan saw of one entry: enough to tell that it changed between two scans.
struct FileSignature: Sendable, Equatable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var modifiedSeconds: Int
    var modifiedNanoseconds: Int
}

/// The polling intake's decision, as a pure value: an entry becomes a candidate once two
/// consecutive scans saw the same signature (inode, size, mtime), and is reported once per
/// signature. An entry that disappears (claimed) is forgotten, so the same name dropped again is
/// reported again.
struct StabilityTracker: Sendable {
    private var previous: [IntakeCandidate: FileSignature] = [:]
    private var reported: [IntakeCandidate: FileSignature] = [:]

    /// Takes one scan's observations; returns the entries that just became stable.
    mutating func observe(_ scan: [IntakeCandidate: FileSignature]) -> [IntakeCandidate] {
        var stable: [IntakeCandidate] = []
        for (candidate, signature) in scan
        where previous[candidate] == signature && reported[candidate] != signature {
            reported[candidate] = signature
            stable.append(candidate)
        }
        reported = reported.filter { scan[$0.key] != nil }
        previous = scan
        return stable.sorted { ($0.endpoint, $0.relativePath) < ($1.endpoint, $1.relativePath) }
    }
}
