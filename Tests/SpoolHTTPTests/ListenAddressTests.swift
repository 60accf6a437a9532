import SpoolHTTP
import Testing

/// `--listen` parsing and the rule that keeps the API on loopback unless asked otherwise.
@Suite struct ListenAddressTests {
    @Test func parsesPortHostAndIPv6() throws {
        #expect(try ListenAddress.parse("8081") == ListenAddress(host: "127.0.0.1", port: 8081))
        #expect(try ListenAddress.parse("0.0.0.0:80") == ListenAddress(host: "0.0.0.0", port: 80))
        #expect(try ListenAddress.parse("localhost:9000") == ListenAddress(host: "localhost", port: 9000))
        #expect(try ListenAddress.parse("[::1]:8081") == ListenAddress(host: "::1", port: 8081))
        #expect(try ListenAddress.parse("[::1]:8081").description == "[::1]:8081")
        #expect(try ListenAddress.parse("0").port == 0)
        for bad in ["", "abc", "70000", "-1", "host:", ":80", "[::1]", "[]:80", "::1:80", "host:port"] {
            #expect(throws: ListenAddressError.self, "\(bad)") { try ListenAddress.parse(bad) }
        }
    }

    @Test func knowsLoopback() {
        for host in ["127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "::1", "::ffff:127.0.0.1"] {
            #expect(ListenAddress(host: host, port: 1).isLoopback, "\(host)")
        }
        for host in ["0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "example.com", "::ffff:10.0.0.1", "128.0.0.1"] {
            #expect(!ListenAddress(host: host, port: 1).isLoopback, "\(host)")
        }
    }

    @Test func remoteNeedsAllowRemoteAndAToken() throws {
        let loopback = ListenAddress(port: 8081)
        try loopback.checkPolicy(allowRemote: false, authToken: nil)
        let remote = ListenAddress(host: "0.0.0.0", port: 8081)
        #expect(throws: ListenAddressError.self) { try remote.checkPolicy(allowRemote: false, authToken: nil) }
        #expect(throws: ListenAddressError.self) { try remote.checkPolicy(allowRemote: false, authToken: "a-token-of-16-chars") }
        #expect(throws: ListenAddressError.self) { try remote.checkPolicy(allowRemote: true, authToken: nil) }
        #expect(throws: ListenAddressError.self) { try remote.checkPolicy(allowRemote: true, authToken: "") }
        try remote.checkPolicy(allowRemote: true, authToken: "a-token-of-16-chars")
    }
}
