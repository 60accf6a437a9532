import Foundation
import Testing

extension HTTPAPITests {
    /// With `[http] auth_token`, every route but `/ping` needs the token, as a Bearer token or
    /// as the SigV4 access key id; anything else is 403 as AWS answers it.
    @Suite struct Authorization {
        static let token = "test-token-0123456789"

        static func sigV4(_ key: String) -> String {
            "AWS4-HMAC-SHA256 Credential=\(key)/20250101/us-east-1/sagemaker/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123abcd"
        }

        @Test func tokenIsRequired() async throws {
            try await TestServer.with(extraHTTP: "auth_token = \"\(Self.token)\"") { server in
                let body = Data("x".utf8)
                expectError(try await server.invoke([:], body: body), status: 403, type: "MissingAuthenticationTokenException")
                expectError(try await server.invoke([:], body: body, extra: [("Authorization", "Bearer wrong-token-0123456789")]),
                            status: 403, type: "UnrecognizedClientException")
                expectError(try await server.invoke([:], body: body, extra: [("Authorization", Self.sigV4("AKIDEXAMPLE"))]),
                            status: 403, type: "UnrecognizedClientException")
                expectError(try await server.invoke([:], body: body, extra: [("Authorization", "Basic abc")]),
                            status: 403, type: "UnrecognizedClientException")
                expectError(try await server.send(.GET, "/metrics"), status: 403, type: "MissingAuthenticationTokenException")
                expectError(try await server.send(.GET, "/requests/x"), status: 403, type: "MissingAuthenticationTokenException")

                let bearer = try await server.invoke([:], body: body, extra: [("Authorization", "Bearer \(Self.token)")])
                #expect(bearer.status == 202, "\(bearer.text)")
                let signed = try await server.invoke([:], body: body, extra: [("Authorization", Self.sigV4(Self.token))])
                #expect(signed.status == 202, "\(signed.text)")
                let metrics = try await server.send(.GET, "/metrics", headers: [("Authorization", "Bearer \(Self.token)")])
                #expect(metrics.status == 200)
                #expect(try await server.send(.GET, "/ping").status == 200, "health checks need no token")
                let all = try await server.daemon.engine.ledger.list(.init(limit: 100))
                #expect(all.count == 2)
            }
        }
    }
}
