import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Where `spool serve --listen` binds, and the rule that decides whether it may.
///
/// `PORT` alone binds 127.0.0.1; `HOST:PORT` and `[IPv6]:PORT` bind that address. Port 0 asks
/// the kernel for a free port (the log line names the one it chose).
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String = "127.0.0.1", port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `PORT`, `HOST:PORT` or `[IPv6]:PORT`.
    public static func parse(_ text: String) throws(ListenAddressError) -> ListenAddress {
        func port(_ s: Substring) throws(ListenAddressError) -> Int {
            guard let p = Int(s), (0...65535).contains(p) else {
                throw ListenAddressError("\"\(text)\": the port must be a number from 0 to 65535")
            }
            return p
        }
        if !text.contains(":") {
            return ListenAddress(port: try port(Substring(text)))
        }
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ListenAddressError("\"\(text)\": write an IPv6 address as [ADDRESS]:PORT")
            }
            let host = String(text[text.index(after: text.startIndex)..<close])
            guard !host.isEmpty else { throw ListenAddressError("\"\(text)\": the host is empty") }
            return ListenAddress(host: host, port: try port(text[text.index(close, offsetBy: 2)...]))
        }
        let colon = text.lastIndex(of: ":")!
        let host = String(text[..<colon])
        guard !host.isEmpty, !host.contains(":") else {
            throw ListenAddressError("\"\(text)\": expected HOST:PORT, PORT or [IPv6]:PORT")
        }
        return ListenAddress(host: host, port: try port(text[text.index(after: colon)...]))
    }

    /// Whether the host is a loopback address: `localhost`, 127.0.0.0/8, `::1`, or an
    /// IPv4-mapped 127.x address. Any other name counts as remote, since it may resolve anywhere.
    public var isLoopback: Bool {
        if host.lowercased() == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            return UInt32(bigEndian: v4.s_addr) >> 24 == 127
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            let bytes = withUnsafeBytes(of: v6) { Array($0) }
            if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }  // ::1
            let mapped = bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF
            return mapped && bytes[12] == 127
        }
        return false
    }

    /// Refuses a non-loopback address unless `--allow-remote` was given and an `auth_token`
    /// is configured: the API would otherwise let anyone on the network queue work and read
    /// files the spool may read.
    public func checkPolicy(allowRemote: Bool, authToken: String?, hasCredentials: Bool = false) throws(ListenAddressError) {
        if isLoopback { return }
        guard allowRemote else {
            throw ListenAddressError("--listen \(self) is not a loopback address; add --allow-remote (and set [http] auth_token or access_key_id and secret_access_key in spool.toml) to serve the network")
        }
        guard hasCredentials || !(authToken ?? "").isEmpty else {
            throw ListenAddressError("--listen \(self) with --allow-remote needs [http] auth_token or access_key_id and secret_access_key in spool.toml")
        }
    }

    /// `HOST:PORT`, with brackets around an IPv6 host.
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// Why a `--listen` value was refused (one sentence).
public struct ListenAddressError: Error, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
