#!/usr/bin/env python3
"""SageMaker asynchronous inference, written as AWS's example notebooks write it: upload the
payload to S3, call invoke_endpoint_async, wait for the output (or the failure) to appear in
S3, download it. Nothing here knows about Spool: point it at a running `spool serve --listen`
with the endpoint alone.

    AWS_ENDPOINT_URL=http://127.0.0.1:8081 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x \\
    AWS_DEFAULT_REGION=us-east-1 python3 async_inference.py ENDPOINT BUCKET FILE

(With `[http] auth_token` set, the token is the access key id.) Prints the output location and
writes the result next to FILE as FILE.out; exits 1 if the request failed.
"""

import os
import sys
import uuid

import boto3
import botocore


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: async_inference.py ENDPOINT BUCKET FILE")
    endpoint_name, bucket, path = sys.argv[1:]
    s3 = boto3.client("s3")
    runtime = boto3.client("sagemaker-runtime")

    # 1. Upload the payload (upload_file goes multipart past 8 MiB).
    input_key = "async-inputs/%s-%s" % (uuid.uuid4().hex[:8], os.path.basename(path))
    s3.upload_file(path, bucket, input_key)

    # 2. Invoke the endpoint asynchronously.
    response = runtime.invoke_endpoint_async(
        EndpointName=endpoint_name,
        InputLocation="s3://%s/%s" % (bucket, input_key),
        ContentType="application/octet-stream",
    )
    output_location = response["OutputLocation"]
    failure_location = response.get("FailureLocation")
    print("InferenceId:", response["InferenceId"])
    print("OutputLocation:", output_location)

    # 3. Wait for the output or the failure, as the notebooks do with S3 waiters.
    def split(location):
        rest = location[len("s3://"):]
        return rest.split("/", 1)

    output_bucket, output_key = split(output_location)
    waiter = s3.get_waiter("object_exists")
    for _ in range(120):
        try:
            waiter.wait(Bucket=output_bucket, Key=output_key, WaiterConfig={"Delay": 1, "MaxAttempts": 1})
            break
        except botocore.exceptions.WaiterError:
            if failure_location:
                failure_bucket, failure_key = split(failure_location)
                try:
                    s3.head_object(Bucket=failure_bucket, Key=failure_key)
                    error = s3.get_object(Bucket=failure_bucket, Key=failure_key)["Body"].read().decode()
                    print("the request failed:", error)
                    sys.exit(1)
                except botocore.exceptions.ClientError:
                    pass
    else:
        sys.exit("no output after 120 s")

    # 4. Download the result (ranged GETs for a large one).
    s3.download_file(output_bucket, output_key, path + ".out")
    print("result:", path + ".out")


if __name__ == "__main__":
    main()
