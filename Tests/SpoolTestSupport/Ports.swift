import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// TCP ports on 127.0.0.1 for servers a test starts in another process (a daemon, a model
/// server, rclone), which must be told their port before they bind it.
///
/// Every test target runs in one process, so the ports are handed out from one counter: no two
/// tests of a run are ever given the same port. They come from below the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`, 32768–60999 by default), where the kernel never
/// puts the source port of an outgoing connection or a server bound to port 0, and each is
/// checked to be free when handed out (another program on the machine may hold it). A port the
/// kernel chose (`bind` to port 0, then released) is not safe: until the server binds it, any
/// outgoing connection may take it, and another test's server may be given it too.
public enum TestPorts {
    private static let lowest = 20_000
    private static let highest = 32_000
    /// Where the counter starts: a random offset, so two test runs on one machine rarely meet.
    private static let next = Atomic<Int>(Int.random(in: 0..<(highest - lowest)))

    /// The first of `count` consecutive ports, free now and never given to another test of this
    /// run.
    public static func reserve(_ count: Int = 1) throws -> Int {
        precondition(count >= 1 && count <= 100)
        for _ in 0..<((highest - lowest) / count) {
            let offset = next.add(count, ordering: .relaxed).oldValue % (highest - lowest)
            // A block that would run past the top is skipped, not wrapped onto ports given out.
            guard offset + count <= highest - lowest else { continue }
            let base = lowest + offset
            if (base..<(base + count)).allSatisfy(isFree) { return base }
        }
        throw TestPortsExhausted()
    }

    /// Whether a listening socket could bind 127.0.0.1:`port` now.
    public static func isFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

public struct TestPortsExhausted: Error, CustomStringConvertible {
    public var description: String { "no free TCP port on 127.0.0.1 between 20000 and 32000" }
}
