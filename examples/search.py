"""A tuning study for the README: which C makes the best churn model?

Run it with `shipyard tune run examples/search.py:objective -n 10 --direction maximize`: every
trial is a run in the workspace, the study is kept in its store.
"""

from __future__ import annotations

from functools import cache

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import shipyard
from shipyard.tuning import Float, Trial

space = {"C": Float(1e-3, 10.0, log=True)}


@cache
def customers() -> pd.DataFrame:
    """churn@1, read once for all the trials of this process."""
    return shipyard.data.load("churn@1")


def objective(trial: Trial) -> float:
    """Mean ROC AUC of 3-fold cross-validation on churn@1 (higher is better)."""
    frame = customers()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=trial.params["C"]))
    scores = cross_val_score(
        model, frame.drop(columns="churned"), frame["churned"], cv=3, scoring="roc_auc"
    )
    return float(scores.mean())
