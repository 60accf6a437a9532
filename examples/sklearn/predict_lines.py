#!/usr/bin/env python3
"""The model in inference.py as a command model: CSV rows on stdin (64 numbers each), one
predicted digit a line on stdout, in the same order. With `split = "line"`, Spool gives each
process one batch of a large file and puts the answers back together in order.

    predict_lines.py MODEL_DIR
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import inference  # noqa: E402


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: predict_lines.py MODEL_DIR")
    model = inference.model_fn(sys.argv[1])
    data = inference.input_fn(sys.stdin.buffer.read(), "text/csv")
    output, _ = inference.output_fn(inference.predict_fn(data, model), "text/csv")
    sys.stdout.buffer.write(output)


if __name__ == "__main__":
    main()
