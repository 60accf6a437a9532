#!/usr/bin/env python3
"""A small SageMaker-style model server, standard library only.

It follows the SageMaker inference container contract: it listens on the port in
SAGEMAKER_BIND_TO_PORT (default 8080), answers GET /ping with 200, and serves
POST /invocations, reading the request body in chunks and streaming the answer back.

What an invocation does is its mode: the first word of argv (`serve.py upper`), or the
MODEL_MODE environment variable, or `echo`; a request may choose another with
`mode=NAME` in its X-Amzn-SageMaker-Custom-Attributes header (`mode=slow,seconds=5`).

  echo     the body, byte for byte
  upper    the body with ASCII letters upper-cased
  headers  a JSON object of the request's Content-Type, Accept, custom attributes, length
  fail500  reads the body, answers 500 with a short message
  fail400  reads the body, answers 400 with a short message
  crash    reads part of the body, writes to stderr, and exits with status 3 mid-request
  slow     sleeps `seconds` (default 30), then echoes
  env      sleeps `seconds` (default 0), then answers a JSON object of its working folder, PID
           and the environment variables that start with SAGEMAKER_, CUDA_ or TEST_

SERVE_STARTUP_DELAY (seconds) delays binding the port, to show a slow start.
`--exit-with-parent` (for tests) makes the server exit once the process that started it is gone.
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 1 << 20
ARGS = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
DEFAULT_MODE = ARGS[0] if ARGS else os.environ.get("MODEL_MODE", "echo")
UPPER = bytes.maketrans(b"abcdefghijklmnopqrstuvwxyz", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def attributes(header):
    """`mode=slow,seconds=5` -> {"mode": "slow", "seconds": "5"}."""
    pairs = (item.split("=", 1) for item in (header or "").replace(";", ",").split(",") if "=" in item)
    return {key.strip(): value.strip() for key, value in pairs}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        if os.environ.get("SERVE_QUIET") != "1":
            super().log_message(format, *args)

    def answer(self, status, body, content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/ping":
            self.answer(200, b"")
        else:
            self.answer(404, b"not found\n")

    def chunks(self, length):
        """The request body, CHUNK bytes at a time."""
        left = length
        while left > 0:
            data = self.rfile.read(min(CHUNK, left))
            if not data:
                raise ConnectionError("the client closed the connection early")
            left -= len(data)
            yield data

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        if self.path != "/invocations":
            for _ in self.chunks(length):
                pass
            return self.answer(404, b"not found\n")
        custom = self.headers.get("X-Amzn-SageMaker-Custom-Attributes")
        options = attributes(custom)
        mode = options.get("mode", DEFAULT_MODE)

        if mode == "headers":
            for _ in self.chunks(length):
                pass
            seen = {
                "contentType": self.headers.get("Content-Type"),
                "accept": self.headers.get("Accept"),
                "customAttributes": custom,
                "inferenceId": self.headers.get("X-Amzn-SageMaker-Inference-Id"),
                "contentLength": length,
            }
            return self.answer(200, json.dumps(seen, sort_keys=True).encode(), "application/json")
        if mode == "env":
            for _ in self.chunks(length):
                pass
            time.sleep(float(options.get("seconds", "0")))
            seen = {name: value for name, value in os.environ.items() if name.startswith(("SAGEMAKER_", "CUDA_", "TEST_"))}
            seen["cwd"] = os.getcwd()
            seen["pid"] = os.getpid()
            return self.answer(200, json.dumps(seen, sort_keys=True).encode(), "application/json")
        if mode in ("fail500", "fail400"):
            for _ in self.chunks(length):
                pass
            status = 500 if mode == "fail500" else 400
            return self.answer(status, b"model failed: this server was asked to fail (%d)\n" % status)
        if mode == "crash":
            next(self.chunks(min(length, 4096)), None)
            sys.stderr.write("serve.py: crashing mid-request as asked\n")
            sys.stderr.flush()
            os._exit(3)
        if mode == "slow":
            deadline = time.monotonic() + float(options.get("seconds", "30"))
            while time.monotonic() < deadline:
                time.sleep(0.05)

        # echo, upper, slow: stream the body back as it is read (the length is the same).
        self.send_response(200)
        self.send_header("Content-Type", self.headers.get("Accept") or "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        for data in self.chunks(length):
            self.wfile.write(data.translate(UPPER) if mode == "upper" else data)


def exit_with_parent():
    """Exits the whole server once its parent is gone (it is then re-parented)."""
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main():
    if "--exit-with-parent" in sys.argv[1:]:
        threading.Thread(target=exit_with_parent, daemon=True).start()
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
    delay = float(os.environ.get("SERVE_STARTUP_DELAY", "0"))
    if delay > 0:
        time.sleep(delay)
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    sys.stderr.write("serve.py: listening on 127.0.0.1:%d (mode %s)\n" % (port, DEFAULT_MODE))
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
