#!/usr/bin/env python3
"""Run SageMaker async-inference client code against a local Spool.

The only change from code that talks to AWS is `endpoint_url`. Spool maps the S3 bucket
named in spool.toml's [buckets] to a folder, so "uploading" is copying a file there.

    spool serve --listen 8081            # in another terminal, on a root whose spool.toml has
                                         #   [buckets]
                                         #   spool = "."     # the root itself is bucket "spool"
    python3 examples/boto3/invoke.py data.csv
    python3 examples/boto3/invoke.py data.csv --url http://127.0.0.1:8081 --root ./spool \
        --bucket spool --endpoint default --content-type text/csv

Options mirror InvokeEndpointAsync: --inference-id, --ttl (RequestTTLSeconds),
--timeout (InvocationTimeoutSeconds), --custom-attributes. With [http] auth_token set,
pass --token TOKEN (sent as the access key id; the secret key is not checked).
"""
import argparse
import json
import os
import shutil
import sys
import time
import urllib.parse

try:
    import boto3
    import botocore.exceptions
except ImportError:
    sys.exit("this example needs boto3: pip install boto3")


def bucket_folder(root, bucket):
    """The folder [buckets] maps `bucket` to (read from spool.toml; relative paths are in the root)."""
    try:
        import tomllib  # Python 3.11+
        with open(os.path.join(root, "spool.toml"), "rb") as f:
            folder = tomllib.load(f).get("buckets", {}).get(bucket)
    except (ImportError, FileNotFoundError):
        folder = "." if bucket == "spool" else None
    if folder is None:
        sys.exit(f'bucket "{bucket}" is not in [buckets] of {root}/spool.toml; add: {bucket} = "."')
    return folder if os.path.isabs(folder) else os.path.join(root, folder)


def local_path(location, root, bucket, folder):
    """Where an s3:// or file:// location Spool answered lies on this machine."""
    parsed = urllib.parse.urlparse(location)
    if parsed.scheme == "file":
        return urllib.parse.unquote(parsed.path)
    if parsed.scheme == "s3" and parsed.netloc == bucket:
        return os.path.join(folder, parsed.path.lstrip("/"))
    sys.exit(f"cannot map {location} to a local path (bucket {parsed.netloc} is not {bucket})")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("file", help="the payload to upload and invoke")
    p.add_argument("--url", default="http://127.0.0.1:8081", help="Spool's HTTP API")
    p.add_argument("--root", default=os.environ.get("SPOOL_ROOT", "spool"), help="the spool root")
    p.add_argument("--bucket", default="spool", help="a bucket name from [buckets]")
    p.add_argument("--endpoint", default="default")
    p.add_argument("--content-type", default="application/octet-stream")
    p.add_argument("--accept")
    p.add_argument("--custom-attributes")
    p.add_argument("--inference-id")
    p.add_argument("--ttl", type=int, help="RequestTTLSeconds, 60-21600")
    p.add_argument("--timeout", type=int, help="InvocationTimeoutSeconds, 1-3600")
    p.add_argument("--token", help="[http] auth_token, when configured")
    p.add_argument("--wait", type=float, default=300, help="seconds to poll for the result")
    args = p.parse_args()

    # 1. "Upload": copy the payload into the bucket's folder, under uploads/.
    folder = bucket_folder(args.root, args.bucket)
    key = f"uploads/{int(time.time() * 1000)}-{os.path.basename(args.file)}"
    os.makedirs(os.path.dirname(os.path.join(folder, key)), exist_ok=True)
    shutil.copyfile(args.file, os.path.join(folder, key) + ".part")
    os.replace(os.path.join(folder, key) + ".part", os.path.join(folder, key))

    # 2. Invoke, exactly as against SageMaker (plus endpoint_url).
    client = boto3.client(
        "sagemaker-runtime", endpoint_url=args.url, region_name="us-east-1",
        aws_access_key_id=args.token or "local", aws_secret_access_key="local",
    )
    params = {"EndpointName": args.endpoint, "InputLocation": f"s3://{args.bucket}/{key}",
              "ContentType": args.content_type}
    optional = {"Accept": args.accept, "CustomAttributes": args.custom_attributes,
                "InferenceId": args.inference_id, "RequestTTLSeconds": args.ttl,
                "InvocationTimeoutSeconds": args.timeout}
    params.update({k: v for k, v in optional.items() if v is not None})
    try:
        response = client.invoke_endpoint_async(**params)
    except botocore.exceptions.ClientError as e:
        sys.exit(f"{e.response['Error']['Code']}: {e.response['Error']['Message']}")
    print(json.dumps({k: response[k] for k in ("InferenceId", "OutputLocation", "FailureLocation")}), file=sys.stderr)

    # 3. Poll for the output (or the error marker), as one polls S3 after InvokeEndpointAsync.
    output = local_path(response["OutputLocation"], args.root, args.bucket, folder)
    failure = local_path(response["FailureLocation"], args.root, args.bucket, folder)
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        if os.path.exists(output):
            with open(output, "rb") as f:
                sys.stdout.buffer.write(f.read())
            return 0
        if os.path.exists(failure):
            with open(failure) as f:
                marker = json.load(f)
            sys.exit(f"{marker.get('failureCode')}: {marker.get('failureReason')}")
        time.sleep(0.2)
    sys.exit(f"no result after {args.wait:g} s; see {args.url}/requests/{response['InferenceId']}")


if __name__ == "__main__":
    sys.exit(main())
