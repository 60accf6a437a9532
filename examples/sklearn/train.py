#!/usr/bin/env python3
"""Trains a scikit-learn classifier on the digits data set scikit-learn ships (no download) and
makes ROOT a spool root that serves it two ways.

    python3 examples/sklearn/train.py demo

writes:
  demo/model/model.joblib   the fitted model (SAGEMAKER_BASE_DIR/model, as SageMaker lays it out)
  demo/sample.csv           450 held-out images, 64 pixel values a row, no header, no label
  demo/sample-labels.csv    their true digits, one a line
  demo/spool.toml           (unless there is one) two endpoints on this model:
      digits        the model server (serve.py) as a container endpoint: CSV or JSON in,
                    CSV or JSON out as Accept asks
      digits-lines  the same model as a command endpoint with split = "line": a large CSV is
                    cut into batches, scored on every core, and put back together in order
"""

import os
import sys

import joblib
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

HERE = os.path.dirname(os.path.abspath(__file__))

CONFIG = """\
# Written by examples/sklearn/train.py: one scikit-learn model, served two ways.

# A SageMaker-style model server (serve.py), started and scaled by Spool.
[endpoints.digits]
instances = {{ max = 2, idle_seconds = 600 }}
max_concurrent_invocations_per_instance = 4

[endpoints.digits.model.container]
serve = ["python3", "{here}/serve.py"]
port = 18080
workdir = "."                              # the root: SAGEMAKER_BASE_DIR/model is ./model
env = {{ SAGEMAKER_BASE_DIR = ".", OMP_NUM_THREADS = "1" }}
startup_timeout_seconds = 120

# The same model as a command: one CSV row a line, scored in batches on every core.
[endpoints.digits-lines]
model = {{ command = ["python3", "{here}/predict_lines.py", "{root}/model"] }}
split = "line"
split_max_records = 2000
instances = {{ max = {cores} }}
"""


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: train.py ROOT")
    root = os.path.abspath(sys.argv[1])
    os.makedirs(os.path.join(root, "model"), exist_ok=True)

    digits = load_digits()
    train_x, test_x, train_y, test_y = train_test_split(
        digits.data, digits.target, test_size=450, random_state=7, stratify=digits.target)
    model = LogisticRegression(max_iter=5000)
    model.fit(train_x, train_y)
    joblib.dump(model, os.path.join(root, "model", "model.joblib"))
    accuracy = model.score(test_x, test_y)

    with open(os.path.join(root, "sample.csv"), "w") as f:
        for row in test_x:
            f.write(",".join(str(int(v)) for v in row) + "\n")
    with open(os.path.join(root, "sample-labels.csv"), "w") as f:
        f.writelines("%d\n" % label for label in test_y)
    config = os.path.join(root, "spool.toml")
    if not os.path.exists(config):
        with open(config, "w") as f:
            f.write(CONFIG.format(here=HERE, root=root, cores=os.cpu_count() or 1))
    print("trained on %d images, %.1f%% right on %d held out; model in %s/model"
          % (len(train_x), accuracy * 100, len(test_x), root))


if __name__ == "__main__":
    main()
