"""The churn pipeline of the README: split a dataset version, train, evaluate, register.

Run it with `shipyard pipeline run examples/churn_pipeline.py:churn --param C=0.5`. Each step
is cached by its code and inputs: run it again with another C and only `train` and
`evaluate` run again; add a new version of the data and every step does.
"""

from __future__ import annotations

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import shipyard

TARGET = "churned"


@shipyard.step(outputs=("train_rows", "test_rows"))
def features(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out the last quarter of the rows to judge the model on."""
    cut = len(frame) * 3 // 4
    return frame.iloc[:cut], frame.iloc[cut:]


@shipyard.step
def train(rows: pd.DataFrame, C: float) -> Pipeline:
    """Scaled features, logistic regression."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C))
    return model.fit(rows.drop(columns=TARGET), rows[TARGET])


@shipyard.step
def evaluate(model: Pipeline, rows: pd.DataFrame, dataset: str) -> str:
    """Log the model's ROC AUC on the held-out rows, register it: its ref, e.g. churn@3."""
    inputs = rows.drop(columns=TARGET)
    with shipyard.start_run(experiment="churn", name="pipeline") as run:
        run.use_dataset(*shipyard.data.parse_ref(dataset))
        run.log_params({"model": "logreg", "C": model[-1].C})
        run.log_metric("auc", roc_auc_score(rows[TARGET], model.predict_proba(inputs)[:, 1]))
        return run.log_model(model, "churn", input_example=inputs.head()).ref


@shipyard.pipeline
def churn(C: float = 1.0, dataset: str = "churn@latest") -> str:
    """Train the churn model on ``dataset``; the result is the registered version."""
    train_rows, test_rows = features(shipyard.data.ref(dataset))
    return evaluate(train(train_rows, C), test_rows, dataset)
