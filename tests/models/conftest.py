"""Real models trained on scikit-learn's bundled data sets (nothing is downloaded)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shipyard.artifacts import hash_file
from shipyard.models import META_FILE


@dataclass(frozen=True)
class Trained:
    model: Any
    X: Any
    y: Any


@pytest.fixture(scope="session")
def cancer_frame() -> tuple[Any, Any]:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="session")
def cancer_logreg(cancer_frame: tuple[Any, Any]) -> Trained:
    """A scaled logistic regression on a DataFrame: a column signature."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = cancer_frame
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    return Trained(model, X, y)


@pytest.fixture(scope="session")
def cancer_forest(cancer_frame: tuple[Any, Any]) -> Trained:
    """A small random forest on a numpy array: a tensor signature, and a skops Tree type."""
    from sklearn.ensemble import RandomForestClassifier

    X, y = cancer_frame
    array = X.to_numpy()
    model = RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0).fit(array, y)
    return Trained(model, array, y.to_numpy())


@pytest.fixture(scope="session")
def diabetes_ridge() -> Trained:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True)
    return Trained(Ridge(alpha=0.5).fit(X, y), X, y)


@pytest.fixture(scope="session")
def wine_logreg() -> Trained:
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_wine(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    return Trained(model, X, y)


def rewrite_digests(model_dir: Path) -> None:
    """Make ``shipyard-model.json`` list the folder's files as they are now.

    An attacker who can change a model's files can change its metadata too; tests that plant
    a bad file use this so that the digest check passes and the later safety checks are hit.
    """
    meta_file = model_dir / META_FILE
    meta = json.loads(meta_file.read_text())
    meta["files"] = [
        {
            "path": p.relative_to(model_dir).as_posix(),
            "digest": hash_file(p),
            "size": p.stat().st_size,
        }
        for p in sorted(model_dir.rglob("*"))
        if p.is_file() and p.name != META_FILE
    ]
    meta_file.write_text(json.dumps(meta))
