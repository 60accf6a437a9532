import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What `spool` does when it runs as PID 1 (the first process of a container): it stays PID 1 as
/// a minimal init — starts the real command as its child, forwards SIGTERM, SIGINT, SIGHUP,
/// SIGQUIT, SIGUSR1 and SIGUSR2 to it, reaps every process that ends up its child (a model's
/// orphaned helpers are reparented to PID 1, and would otherwise stay zombies for good), and
/// exits with the command's status.
///
/// The child is this same program with the same arguments, started with `posix_spawn` (nothing
/// is forked from a threaded process) and `SPOOL_INIT_CHILD=1` in its environment.
enum InitProcess {
    static let childMarker = "SPOOL_INIT_CHILD"

    /// Whether this process should act as init: it is PID 1 and not already the init's child.
    static var isNeeded: Bool {
        getpid() == 1 && ProcessInfo.processInfo.environment[childMarker] == nil
    }

    /// The command's PID, for the signal handlers (set once, before any handler is installed).
    nonisolated(unsafe) static var child: pid_t = 0

    static let forwarded: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2]

    /// Runs the command as a child and reaps until it exits; returns its exit status (128 + N
    /// for signal N).
    static func run() -> Int32 {
        let arguments = CommandLine.arguments
        var environment = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        environment.append("\(childMarker)=1")
        // Whoever started this process may have blocked or ignored signals; the command starts
        // with none blocked and the forwarded ones at their defaults, and this thread takes them.
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in forwarded { sigaddset(&signals, signal) }
        var none = sigset_t()
        sigemptyset(&none)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &signals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let spawned = withCStrings(arguments) { argv in
            withCStrings(environment) { envp in
                posix_spawn(&pid, "/proc/self/exe", nil, &attributes, argv, envp)
            }
        }
        guard spawned == 0 else {
            FileHandle.standardError.write(Data("spool: cannot start as PID 1's child: \(String(cString: strerror(spawned)))\n".utf8))
            return 1
        }
        child = pid
        for signal in forwarded {
            _ = Glibc.signal(signal) { received in
                if InitProcess.child > 0 { _ = kill(InitProcess.child, received) }
            }
        }
        pthread_sigmask(SIG_UNBLOCK, &signals, nil)
        while true {
            var status: Int32 = 0
            let reaped = waitpid(-1, &status, 0)
            if reaped < 0 {
                if errno == EINTR { continue }
                return 1  // ECHILD: nothing left, and the command's status was missed
            }
            guard reaped == pid else { continue }  // an orphan: reaped, nothing more to do
            let code = status & 0x7F
            return code == 0 ? (status >> 8) & 0xFF : 128 + code
        }
    }

    /// Runs `body` with `strings` as a NULL-terminated array of C strings.
    private static func withCStrings<T>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> T) -> T {
        var pointers = strings.map { strdup($0) }
        pointers.append(nil)
        defer { pointers.forEach { free($0) } }
        return body(pointers)
    }
}
