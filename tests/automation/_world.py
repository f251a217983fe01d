"""A small world for automation tests: a table, a training pipeline, a policy file.

The pipeline trains a logistic regression on ``customers@…`` and registers it as ``churn``;
the parameter ``shuffle`` scrambles the labels (a degraded candidate) and ``sleep_file``
makes the fit step wait while that file exists (to kill an automator mid-run).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

PIPELINE = """
import os
import time

import pandas as pd
from sklearn.linear_model import LogisticRegression

import shipyard

FEATURES = ["x1", "x2", "group"]


@shipyard.step
def fit(rows: pd.DataFrame, shuffle: bool, sleep_file: str) -> str:
    while sleep_file and os.path.exists(sleep_file):
        time.sleep(0.05)
    labels = rows["label"].sample(frac=1.0, random_state=1).to_numpy() if shuffle else rows["label"]
    with shipyard.start_run(experiment="churn") as run:
        estimator = LogisticRegression().fit(rows[FEATURES], labels)
        version = run.log_model(estimator, "churn", input_example=rows[FEATURES].head(3))
    return version.ref


@shipyard.pipeline
def train(dataset: str = "customers@latest", shuffle: bool = False, sleep_file: str = ""):
    return fit(shipyard.data.ref(dataset), shuffle, sleep_file)
"""

GATE = """
min: {roc_auc: 0.75}
max_regression: {roc_auc: 0.02}
"""


def table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    group = rng.integers(0, 2, size=rows)
    label = (x1 + 0.5 * x2 + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "group": group, "label": label})


def policy(folder: Path, body: str) -> Path:
    """Write ``train.py``, ``gate.yaml`` and ``automation.yaml`` (``body``) into ``folder``."""
    (folder / "train.py").write_text(textwrap.dedent(PIPELINE).lstrip())
    (folder / "gate.yaml").write_text(textwrap.dedent(GATE).lstrip())
    path = folder / "automation.yaml"
    path.write_text(textwrap.dedent(body).lstrip())
    return path


BASIC = """
automations:
  - name: retrain
    pipeline: train.py:train
    model: churn
    triggers:
      - dataset: customers
        param: dataset
    gate:
      data: holdout@latest
      target: label
      policy: gate.yaml
      sensitive: [group]
    limits: {max_rejections: 3, period: 1d, backoff: 1s}
"""
