import Dispatch
import Glibc
import SpoolCore

/// Candidates found by scans go through `SettlingFiles`; events report directly. Runs on `queue`.
extension InotifyIntakeSession {
    /// Reports a candidate an event proved finished.
    func yield(_ folder: Int, _ relative: String) {
        let candidate = IntakeCandidate(endpoint: folders[folder].endpoint, relativePath: relative)
        settling.reported(candidate)
        continuation?.yield(candidate)
    }

    /// Reports a candidate a scan found, unless it is a regular file modified too recently to be
    /// known finished: that one waits for its close event or for `settle` seconds of quiet.
    func offerScanned(_ folder: Int, _ relative: String, type: UInt8) {
        let candidate = IntakeCandidate(endpoint: folders[folder].endpoint, relativePath: relative)
        var signature: FileSignature?
        if Int(type) == Int(DT_REG) || Int(type) == Int(DT_UNKNOWN) {
            signature = (try? SystemCall.lstat(folders[folder].path(relative))).flatMap(FileSignature.init(regularFile:))
        }
        if settling.admit(candidate, signature: signature, now: FileSignature.now()) {
            continuation?.yield(candidate)
        } else if settleTimer == nil {
            let timer = DispatchSource.makeTimerSource(queue: queue)
            timer.setEventHandler { [self] in checkSettling() }
            timer.schedule(deadline: .now() + settling.settle, repeating: settling.settle, leeway: .milliseconds(50))
            settleTimer = timer
            timer.resume()
        }
    }

    /// The settle timer: reports held files that stayed unchanged; stops when none are left.
    func checkSettling() {
        let ready = settling.check(now: FileSignature.now()) { candidate in
            guard let index = folders.firstIndex(where: { $0.endpoint == candidate.endpoint }) else { return nil }
            return (try? SystemCall.lstat(folders[index].path(candidate.relativePath))).flatMap(FileSignature.init(regularFile:))
        }
        for candidate in ready { continuation?.yield(candidate) }
        if settling.pending.isEmpty {
            settleTimer?.cancel()
            settleTimer = nil
        }
    }
}
