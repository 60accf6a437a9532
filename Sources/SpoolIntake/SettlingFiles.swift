import Glibc
import SpoolCore
import SpoolSystem

/// Scanned files that may still be open for writing, held back until they settle.
///
/// An event (`IN_CLOSE_WRITE`, `IN_MOVED_TO`) proves a file is finished; a scan proves nothing.
/// A regular file that a scan (start-up, new folder, overflow) finds modified less than `settle`
/// ago is therefore held here and reported only once it is unchanged for `settle` — or as soon as
/// its close event arrives. Older files, links and FIFOs are reported at once. A pure value: the
/// owner supplies the observations and the time.
struct SettlingFiles: Sendable {
    /// Seconds a scanned file must be left unmodified.
    let settle: Double
    private(set) var pending: [IntakeCandidate: FileSignature] = [:]

    init(settle: Double) {
        self.settle = settle
    }

    /// Whether a scanned candidate is reported now; otherwise it is held. `signature` is `nil`
    /// for anything but a regular file. `now`: seconds since the epoch.
    mutating func admit(_ candidate: IntakeCandidate, signature: FileSignature?, now: Double) -> Bool {
        guard let signature, signature.isRecent(now: now, within: settle) else {
            pending[candidate] = nil
            return true
        }
        pending[candidate] = signature
        return false
    }

    /// An event reported the candidate: stop holding it.
    mutating func reported(_ candidate: IntakeCandidate) {
        pending[candidate] = nil
    }

    /// Re-examines the held files (every `settle`): returns those unchanged since the last look
    /// and now old enough; forgets those gone (`observe` returns `nil`).
    mutating func check(now: Double, observe: (IntakeCandidate) -> FileSignature?) -> [IntakeCandidate] {
        var ready: [IntakeCandidate] = []
        for (candidate, before) in pending {
            guard let current = observe(candidate) else {
                pending[candidate] = nil
                continue
            }
            if current == before && !current.isRecent(now: now, within: settle) {
                pending[candidate] = nil
                ready.append(candidate)
            } else {
                pending[candidate] = current
            }
        }
        return ready.sorted { $0.relativePath < $1.relativePath }
    }
}

extension FileSignature {
    /// The signature of a regular file; `nil` for anything else.
    init?(regularFile info: stat) {
        guard info.isRegularFile else { return nil }
        self.init(
            device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
            modifiedSeconds: info.st_mtim.tv_sec, modifiedNanoseconds: info.st_mtim.tv_nsec
        )
    }

    /// Modified less than `seconds` before `now` (or in the future: a skewed clock).
    func isRecent(now: Double, within seconds: Double) -> Bool {
        now - (Double(modifiedSeconds) + Double(modifiedNanoseconds) / 1e9) < seconds
    }

    /// Seconds since the epoch, from the same clock file times use.
    static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
