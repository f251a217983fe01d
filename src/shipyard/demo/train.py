"""Train the churn model: split a dataset version, tune, fit the best, register it.

Run it with ``shipyard pipeline run pipelines/train.py:train --param trials=10``, or change
it: it is a plain pipeline file. Each step is cached, so a re-run on the same data with the
same settings reuses everything and returns the version registered before; new data (a new
version of the dataset) re-runs every step and registers a new version.

The model sees the columns in ``NUMERIC`` and ``CATEGORICAL``; ``gender`` is kept out of it
(it is only used to check fairness) and ``churned`` is the label.
"""

from __future__ import annotations

import uuid
from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import shipyard
from shipyard.tuning import Float, Int, Trial

NUMERIC = ["age", "income", "tenure_months", "monthly_charges", "support_calls"]
CATEGORICAL = ["plan", "region", "contract"]
TARGET = "churned"
VALIDATION_SHARE = 0.25
SPACE = {
    "learning_rate": Float(0.01, 0.3, log=True),
    "max_leaf_nodes": Int(4, 48),
    "min_samples_leaf": Int(10, 120),
    "l2_regularization": Float(1e-3, 10.0, log=True),
}


def build_model(params: dict[str, Any], seed: int) -> Pipeline:
    """The estimator: one-hot categories, scaled numbers, gradient-boosted trees."""
    features = ColumnTransformer(
        [
            ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("numeric", StandardScaler(), NUMERIC),
        ]
    )
    trees = HistGradientBoostingClassifier(
        max_iter=150, early_stopping=False, random_state=seed, **params
    )
    return Pipeline([("features", features), ("classifier", trees)])


def score(model: Pipeline, rows: pd.DataFrame) -> dict[str, float]:
    """ROC AUC and accuracy of ``model`` on ``rows``."""
    inputs, truth = rows[NUMERIC + CATEGORICAL], rows[TARGET]
    return {
        "roc_auc": float(roc_auc_score(truth, model.predict_proba(inputs)[:, 1])),
        "accuracy": float(accuracy_score(truth, model.predict(inputs))),
    }


@shipyard.step(outputs=("train_rows", "valid_rows"))
def split(customers: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a stratified share of the rows to choose and judge the model on."""
    missing = [c for c in [*NUMERIC, *CATEGORICAL, TARGET] if c not in customers.columns]
    if missing:
        raise ValueError(f"the dataset has no column {', '.join(missing)}")
    train_rows, valid_rows = train_test_split(
        customers, test_size=VALIDATION_SHARE, stratify=customers[TARGET], random_state=seed
    )
    return train_rows.reset_index(drop=True), valid_rows.reset_index(drop=True)


@shipyard.step(outputs=("params", "study"))
def search(
    train_rows: pd.DataFrame, valid_rows: pd.DataFrame, name: str, trials: int, seed: int
) -> tuple[dict[str, Any], str]:
    """Tune the trees on the split: the best parameters and the study's name."""

    def objective(trial: Trial) -> float:
        model = build_model(trial.params, seed).fit(
            train_rows[NUMERIC + CATEGORICAL], train_rows[TARGET]
        )
        metrics = score(model, valid_rows)
        trial.log_metric("accuracy", metrics["accuracy"])
        return metrics["roc_auc"]

    # A study of its own every time this step runs: trials on other data (or an older
    # objective) under the same name would compete with these.
    study = shipyard.tune(
        objective,
        SPACE,
        n_trials=trials,
        direction="maximize",
        study=f"{name}-{uuid.uuid4().hex[:8]}",
        experiment=name,
        metric="roc_auc",
        seed=seed,
    )
    # A step's output is its log: shown by the runner, kept with the step run.
    print(f"study {study.name}: best roc_auc {study.best_value:.3f}")  # noqa: T201
    return dict(study.best_params), study.name


@shipyard.step
def fit(
    train_rows: pd.DataFrame,
    valid_rows: pd.DataFrame,
    params: dict[str, Any],
    dataset: str,
    model: str,
    seed: int,
) -> str:
    """Fit the best parameters on the training rows and register the model."""
    with shipyard.start_run(experiment=model, name="train") as run:
        run.use_dataset(*shipyard.data.parse_ref(dataset))
        run.log_params(
            {
                **params,
                "estimator": "HistGradientBoostingClassifier",
                "dataset": dataset,
                "train_rows": len(train_rows),
                "valid_rows": len(valid_rows),
                "seed": seed,
            }
        )
        estimator = build_model(params, seed).fit(
            train_rows[NUMERIC + CATEGORICAL], train_rows[TARGET]
        )
        metrics = score(estimator, valid_rows)
        run.log_metrics(metrics)
        version = run.log_model(
            estimator, model, input_example=train_rows[NUMERIC + CATEGORICAL].head(5)
        )
    print(f"registered {version.ref}: validation roc_auc {metrics['roc_auc']:.3f}")  # noqa: T201
    return version.ref


@shipyard.pipeline
def train(
    dataset: str = "customers@latest", model: str = "churn", trials: int = 6, seed: int = 0
) -> Any:
    """Train ``model`` on ``dataset``; the result is the registered version, e.g. churn@3."""
    train_rows, valid_rows = split(shipyard.data.ref(dataset), seed)
    params, _ = search(train_rows, valid_rows, model, trials, seed)
    return fit(train_rows, valid_rows, params, dataset, model, seed)
