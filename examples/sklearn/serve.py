#!/usr/bin/env python3
"""A SageMaker-style model server for the model in inference.py.

It follows the SageMaker inference container contract, as AWS's framework containers do:
listens on SAGEMAKER_BIND_TO_PORT (default 8080), loads the model from SAGEMAKER_BASE_DIR/model
(default /opt/ml/model) with model_fn, answers GET /ping with 200 once it is loaded, and serves
POST /invocations through input_fn, predict_fn and output_fn, honouring Content-Type and Accept.
"""

import os
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import inference  # noqa: E402

MODEL = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body, content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/ping":
            self.answer(200 if MODEL is not None else 503, b"")
        else:
            self.answer(404, b"not found\n")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/invocations":
            return self.answer(404, b"not found\n")
        try:
            data = inference.input_fn(body, self.headers.get("Content-Type"))
            prediction = inference.predict_fn(data, MODEL)
            output, content_type = inference.output_fn(prediction, self.headers.get("Accept"))
        except inference.UnsupportedType as error:
            return self.answer(error.status, (str(error) + "\n").encode())
        except Exception as error:  # a bad payload: say what, with the traceback in the log
            traceback.print_exc()
            return self.answer(400, ("could not score the payload: %s\n" % error).encode())
        self.answer(200, output, content_type)


def main():
    global MODEL
    base = os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
    model_dir = os.path.join(base, "model")
    print("loading the model from %s" % os.path.abspath(model_dir), file=sys.stderr, flush=True)
    MODEL = inference.model_fn(model_dir)
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("serving on 127.0.0.1:%d" % port, file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
