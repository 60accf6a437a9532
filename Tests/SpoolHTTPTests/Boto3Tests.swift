import Foundation
import SpoolTestSupport
import Testing

extension HTTPAPITests {
    /// The real boto3 client, unchanged but for `endpoint_url`, against a running server.
    @Suite(.enabled(if: Boto3.available, "python3 with boto3 is not installed")) struct Boto3Client {
        static let script = #"""
        import json, sys
        import boto3, botocore.exceptions
        url, location = sys.argv[1], sys.argv[2]
        client = boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
                              aws_access_key_id="dummy", aws_secret_access_key="dummy")
        r = client.invoke_endpoint_async(EndpointName="default", InputLocation=location,
                                         ContentType="text/csv", InferenceId="boto3-1", RequestTTLSeconds=600)
        out = {k: r.get(k) for k in ("InferenceId", "OutputLocation", "FailureLocation")}
        out["status"] = r["ResponseMetadata"]["HTTPStatusCode"]
        errors = []
        for kwargs in ({"RequestTTLSeconds": 21601}, {"InputLocation": location + ".missing"},
                       {"EndpointName": "nosuch"}):
            args = {"EndpointName": "default", "InputLocation": location, **kwargs}
            try:
                client.invoke_endpoint_async(**args)
                errors.append(None)
            except botocore.exceptions.ClientError as e:
                errors.append([e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Message"]])
        out["errors"] = errors
        print(json.dumps(out))
        """#

        static let authScript = #"""
        import json, sys
        import boto3, botocore.exceptions
        url, location, token = sys.argv[1], sys.argv[2], sys.argv[3]
        out = []
        for key in (token, "AKIDWRONGKEY"):
            client = boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
                                  aws_access_key_id=key, aws_secret_access_key="not-checked")
            try:
                r = client.invoke_endpoint_async(EndpointName="default", InputLocation=location)
                out.append(r["ResponseMetadata"]["HTTPStatusCode"])
            except botocore.exceptions.ClientError as e:
                out.append(e.response["Error"]["Code"])
        print(json.dumps(out))
        """#

        @Test func theTokenIsTheAccessKeyID() async throws {
            let token = "boto3-token-0123456789"
            try await TestServer.with(extraHTTP: "auth_token = \"\(token)\"") { server in
                try server.write("x", to: server.root + "/in.txt")
                try Self.authScript.write(toFile: server.base + "/auth.py", atomically: true, encoding: .utf8)
                let result = await Boto3.run([server.base + "/auth.py", server.url, "file://\(server.root)/in.txt", token])
                #expect(result.status == 0, "\(result.stderr)")
                let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [Any]
                #expect(json?.first as? Int == 202, "\(result.stdout)")
                #expect(json?.last as? String == "UnrecognizedClientException", "\(result.stdout)")
            }
        }

        @Test func invokeEndpointAsyncWorks() async throws {
            try await TestServer.with { server in
                try server.write("a,b\n1,2\n", to: server.root + "/uploads/data.csv")
                try Self.script.write(toFile: server.base + "/client.py", atomically: true, encoding: .utf8)
                let result = await Boto3.run([server.base + "/client.py", server.url, "s3://spool/uploads/data.csv"])
                #expect(result.status == 0, "\(result.stderr)")
                let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout) \(result.stderr)")
                #expect(json["status"] as? Int == 202)
                #expect(json["InferenceId"] as? String == "boto3-1")
                #expect(json["OutputLocation"] as? String == "s3://spool/outputs/boto3-1.out")
                #expect(json["FailureLocation"] as? String == "s3://spool/errors/boto3-1.error.json")
                let errors = try #require(json["errors"] as? [[Any]])
                #expect(errors.count == 3)
                for error in errors {
                    #expect(error.first as? String == "ValidationError", "\(error)")
                    #expect(error.dropFirst().first as? Int == 400, "\(error)")
                }
                #expect(try await server.output("boto3-1") == "a,b\n1,2\n")
            }
        }
    }
}

/// Runs python3 with boto3, off the tests' shared threads (`runProgram`).
enum Boto3 {
    static let available: Bool = runProgramBlocking(["python3", "-c", "import boto3"], environment: environment).status == 0

    static func run(_ arguments: [String]) async -> ProgramOutput {
        await runProgram(["python3"] + arguments, environment: environment)
    }

    /// No AWS configuration of the machine's user leaks into the test.
    static var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["AWS_CONFIG_FILE"] = "/dev/null"
        environment["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
        environment["AWS_EC2_METADATA_DISABLED"] = "true"
        return environment
    }
}
