import CSpoolSystem
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A small watcher process that stops this process's models when this process dies, however it
/// dies: `kill -9` ends a daemon without a chance to stop its command models and model servers,
/// and they would run on (adopted by PID 1) until the next start kills them from their
/// `ProcessGroupRecord`.
///
/// The guard is started once, in a session of its own (a terminal's Ctrl-C does not reach it),
/// with the read end of a pipe as its standard input; this process holds the only write end
/// (close-on-exec, so no model inherits it). When this process ends, the kernel closes the write
/// end, the guard reads end-of-file, kills every group still recorded in `directory`, and exits.
/// After a graceful stop the records are gone and it kills nothing.
///
/// `PR_SET_PDEATHSIG` on each model would not do: the signal follows the *thread* that forked the
/// model, and the threads of Swift's concurrency pool come and go, so models would be killed at
/// random while the daemon runs.
public final class ModelGuard: Sendable {
    /// The guard's PID.
    public let pid: pid_t
    /// The write end of the pipe; never written, closed only when this process ends.
    private let writeEnd: Int32

    private init(pid: pid_t, writeEnd: Int32) {
        self.pid = pid
        self.writeEnd = writeEnd
    }

    /// Starts `command` (a program that calls `ModelGuard.watch(_:)`) as the guard.
    public static func start(command: [String]) throws -> ModelGuard {
        var ends: [Int32] = [-1, -1]
        guard spool_pipe_cloexec(&ends) == 0 else { throw GuardError(call: "pipe2", code: errno) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 clears close-on-exec on the copy: the guard keeps the read end as its stdin.
        posix_spawn_file_actions_adddup2(&actions, ends[0], STDIN_FILENO)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, SPOOL_POSIX_SPAWN_SETSID | Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var argv = command.map { strdup($0) }
        argv.append(nil)
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, command[0], &actions, &attributes, argv, environ)
        close(ends[0])
        guard spawned == 0 else {
            close(ends[1])
            throw GuardError(call: "posix_spawn \(command[0])", code: spawned)
        }
        return ModelGuard(pid: pid, writeEnd: ends[1])
    }

    /// The guard's side: waits for end-of-file on standard input (its starter has ended), then
    /// kills what the starter left running in `directory`. Termination signals are ignored so
    /// that a signal meant for the daemon's group does not end the guard first.
    public static func watch(_ directory: String) -> Never {
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2] {
            _ = Glibc.signal(signal, SIG_IGN)
        }
        var byte: UInt8 = 0
        while true {
            let count = read(STDIN_FILENO, &byte, 1)
            if count == 0 || (count < 0 && errno != EINTR) { break }
        }
        ProcessGroupRecord(directory: directory).killLeftovers()
        exit(0)
    }

    struct GuardError: Error, CustomStringConvertible {
        var call: String
        var code: Int32
        var description: String { "\(call): \(String(cString: strerror(code)))" }
    }
}
