"""The model's four handlers, in the shape AWS's scikit-learn framework container calls them
(sagemaker-scikit-learn-container): model_fn loads, input_fn decodes, predict_fn predicts,
output_fn encodes. serve.py and predict_lines.py only move bytes to and from them."""

import io
import json
import os

import joblib
import numpy as np


class UnsupportedType(Exception):
    """A Content-Type the model cannot read (HTTP 415) or an Accept it cannot write (406)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def input_fn(body, content_type):
    """CSV (one image a row, 64 numbers) or JSON ({"instances": [[...], ...]} or [[...], ...])."""
    kind = (content_type or "text/csv").split(";")[0].strip().lower()
    if kind in ("text/csv", "text/plain", "application/octet-stream"):
        text = body.decode("utf-8")
        if not text.strip():
            return np.empty((0, 64))
        return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2)
    if kind == "application/json":
        data = json.loads(body)
        if isinstance(data, dict):
            data = data.get("instances", data.get("inputs"))
        return np.asarray(data, dtype=float).reshape(-1, 64)
    raise UnsupportedType(415, "content type %s is not supported (text/csv or application/json)" % content_type)


def predict_fn(data, model):
    if len(data) == 0:
        return np.empty((0,), dtype=int)
    return model.predict(data)


def output_fn(prediction, accept):
    """CSV (one digit a line; the default) or JSON ({"predictions": [...]})."""
    kind = (accept or "text/csv").split(";")[0].strip().lower()
    if kind in ("text/csv", "*/*", "text/plain", "application/octet-stream"):
        return "".join("%d\n" % p for p in prediction).encode(), "text/csv"
    if kind == "application/json":
        return json.dumps({"predictions": [int(p) for p in prediction]}).encode(), "application/json"
    raise UnsupportedType(406, "accept %s is not supported (text/csv or application/json)" % accept)
