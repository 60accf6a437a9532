import Dispatch
import SpoolSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The process group a command model runs in: the model is started as the leader of a group of
/// its own (`setpgid(0, 0)`), so every process it starts (a shell's children, a server's workers)
/// can be signalled at once and none outlives the request.
///
/// The group's ID is the leader's PID. It is safe to signal the group while the leader is alive
/// or a zombie not yet reaped (the kernel does not reuse a PID that still names a process or a
/// group), which is why `CommandExecutor` finishes with the group before Subprocess reaps the
/// leader.
enum ProcessGroup {
    /// Sends `signal` to every process in group `pgid`; false when no process is left (ESRCH).
    @discardableResult
    static func signal(_ pgid: pid_t, _ signal: Int32) -> Bool {
        guard pgid > 1 else { return false }
        return Glibc.kill(-pgid, signal) == 0
    }

    /// Whether the leader `pid` has terminated, without reaping it (`waitid` with `WNOWAIT`), so
    /// its group ID stays reserved and Subprocess still collects its status.
    static func leaderHasExited(_ pid: pid_t) -> Bool {
        var info = siginfo_t()
        do {
            try SystemCalls.retrying("waitid") { waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) }
            return info._sifields._sigchld.si_pid == pid
        } catch {
            // ECHILD: already reaped (or never ours); either way it is not running.
            return true
        }
    }

    /// Whether group `pgid` has a process that is not a zombie. Zombies are ignored: an orphaned
    /// member that died is reparented to PID 1 and stays a zombie until PID 1 reaps it, which it
    /// may do late (or, in a container whose PID 1 does not reap, never).
    static func hasLivingMembers(_ pgid: pid_t) -> Bool {
        guard pgid > 1, Glibc.kill(-pgid, 0) == 0 || errno == EPERM else { return false }
        return !livingMembers(of: pgid).isEmpty
    }

    /// The PIDs of the processes in group `pgid` that are not zombies, from `/proc/<pid>/stat`.
    static func livingMembers(of pgid: pid_t) -> [pid_t] {
        guard let directory = opendir("/proc") else { return [] }
        defer { closedir(directory) }
        var members: [pid_t] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let pid = pid_t(name), let status = status(of: pid) else { continue }
            if status.group == pgid && status.state != "Z" && status.state != "X" { members.append(pid) }
        }
        return members
    }

    /// A process's state letter, process group and start time (clock ticks since boot), from
    /// `/proc/<pid>/stat`; nil when it is gone.
    static func status(of pid: pid_t) -> (state: Character, group: pid_t, startTime: UInt64)? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0, let close = buffer[..<n].lastIndex(of: UInt8(ascii: ")")) else { return nil }
        // After "pid (comm)": state (field 3), ppid, pgrp (5), …, starttime (22); comm may itself
        // hold spaces and parentheses.
        let fields = buffer[(close + 1)..<n].split(separator: UInt8(ascii: " "), maxSplits: 20)
        guard fields.count > 19, let state = fields[0].first,
            let group = pid_t(String(decoding: fields[2], as: UTF8.self)),
            let start = UInt64(String(decoding: fields[19], as: UTF8.self))
        else { return nil }
        return (Character(UnicodeScalar(state)), group, start)
    }

    /// Sleeps for `duration` even if the calling task is cancelled: teardown runs *because* of a
    /// cancellation and must still wait out its grace period.
    static func pause(_ duration: Duration) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            timers.asyncAfter(deadline: .now() + dispatchInterval(duration)) { continuation.resume() }
        }
    }

    /// Where pauses end and SIGKILL timers fire: a serial queue, which libdispatch serves from its
    /// overcommit pool. `DispatchQueue.global()` would not do: on Linux it has one thread per
    /// core, and long blocking jobs (`BlockingIO`, a busy daemon) can hold all of them. Its work
    /// items only resume a continuation or send a signal.
    static let timers = DispatchQueue(label: "spool.executors.command-timers")

    static func dispatchInterval(_ duration: Duration) -> DispatchTimeInterval {
        let parts = duration.components
        return .nanoseconds(max(0, Int(parts.seconds) * 1_000_000_000 + Int(parts.attoseconds / 1_000_000_000)))
    }

    /// Waits until the leader `pid` has terminated (not reaped), polling with a back-off from
    /// 100 µs to `longest` and calling `tick` on each round (progress reports). Not cancellable:
    /// the caller makes sure the leader is being killed when the task is cancelled.
    static func waitForLeader(_ pid: pid_t, longest: Duration, tick: () -> Void) async {
        var interval = Duration.microseconds(100)
        while !leaderHasExited(pid) {
            tick()
            await pause(interval)
            interval = min(interval * 2, longest)
        }
    }

    /// Finishes the group once its leader has exited (but has not been reaped). Without a
    /// `deadline`, SIGKILL at once for whatever the model left behind. With one (the task was
    /// cancelled, the group sent SIGTERM, and `Teardown` sends SIGKILL at the deadline), this
    /// waits until no member is left running, sending SIGKILL itself should the timer be late,
    /// and gives up `killWait` after the deadline.
    ///
    /// Without a deadline it does not wait: SIGKILL is delivered asynchronously, but a process
    /// with SIGKILL pending runs no more of its own code (a write in progress stops at the next
    /// page), and scanning `/proc` for every request would cost more than a small request.
    static func finish(_ pgid: pid_t, gracefullyUntil deadline: ContinuousClock.Instant?, killWait: Duration = .seconds(2)) async {
        guard let deadline else {
            signal(pgid, SIGKILL)
            return
        }
        var interval = Duration.microseconds(100)
        while hasLivingMembers(pgid) {
            let now = ContinuousClock.now
            if now >= deadline { signal(pgid, SIGKILL) }
            if now >= deadline + killWait { return }
            await pause(now < deadline ? min(interval, deadline - now) : interval)
            interval = min(interval * 2, .milliseconds(20))
        }
    }

    /// Signals a model's group when its task is cancelled: SIGTERM from the cancelling thread at
    /// once, SIGKILL from a timer after the grace period. Neither waits for a thread of the
    /// cooperative pool, which a busy daemon may keep occupied.
    ///
    /// Signals are sent only between `started` and `finished` (the leader is then alive or an
    /// unreaped zombie, so its PID still names the group), under a lock that `finished` takes.
    final class Teardown: Sendable {
        private struct State {
            var pgid: pid_t?
            var cancelledAt: ContinuousClock.Instant?
            var finished = false
        }

        private let state = Mutex(State())
        let gracePeriod: Duration

        init(gracePeriod: Duration) {
            self.gracePeriod = gracePeriod
        }

        /// When the grace period ends, once the task has been cancelled.
        var deadline: ContinuousClock.Instant? {
            state.withLock { $0.cancelledAt.map { $0 + gracePeriod } }
        }

        /// The model is running as the leader of group `pgid`.
        func started(_ pgid: pid_t) {
            state.withLock { state in
                state.pgid = pgid
                if state.cancelledAt != nil { terminate(pgid) }
            }
        }

        /// The task was cancelled (called from the cancelling thread).
        func cancel() {
            state.withLock { state in
                guard state.cancelledAt == nil else { return }
                state.cancelledAt = .now
                if let pgid = state.pgid, !state.finished { terminate(pgid) }
            }
        }

        /// The leader is about to be reaped: no signal is sent after this returns.
        func finished() {
            state.withLock { $0.finished = true }
        }

        private func terminate(_ pgid: pid_t) {
            ProcessGroup.signal(pgid, SIGTERM)
            ProcessGroup.timers.asyncAfter(deadline: .now() + ProcessGroup.dispatchInterval(gracePeriod)) { [self] in
                state.withLock { state in
                    if !state.finished { ProcessGroup.signal(pgid, SIGKILL) }
                }
            }
        }
    }
}
