"""Real models trained on scikit-learn's bundled data, saved and loaded the Shipyard way."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from shipyard.models import LoadedModel, load_model, save_model


@dataclass(frozen=True)
class Case:
    """A fitted estimator, the same model saved and loaded, and held-out rows with ``target``."""

    estimator: Any
    model: LoadedModel
    test: pd.DataFrame

    @property
    def x(self) -> pd.DataFrame:
        return self.test.drop(columns="target")

    @property
    def y(self) -> pd.Series:
        return self.test["target"]


def _case(frame: pd.DataFrame, estimator: Any, folder: Path, stratify: bool) -> Case:
    train, test = train_test_split(
        frame, test_size=0.35, random_state=0, stratify=frame["target"] if stratify else None
    )
    x = train.drop(columns="target")
    estimator.fit(x, train["target"])
    save_model(estimator, folder, input_example=x.head())
    return Case(estimator, load_model(folder), test.reset_index(drop=True))


def _classifier() -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


@pytest.fixture(scope="session")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Case:
    frame = load_breast_cancer(as_frame=True).frame
    return _case(frame, _classifier(), tmp_path_factory.mktemp("models") / "binary", True)


@pytest.fixture(scope="session")
def dummy_binary(tmp_path_factory: pytest.TempPathFactory) -> Case:
    frame = load_breast_cancer(as_frame=True).frame
    folder = tmp_path_factory.mktemp("models") / "dummy"
    return _case(frame, DummyClassifier(strategy="prior"), folder, True)


@pytest.fixture(scope="session")
def multiclass(tmp_path_factory: pytest.TempPathFactory) -> Case:
    frame = load_wine(as_frame=True).frame
    return _case(frame, _classifier(), tmp_path_factory.mktemp("models") / "wine", True)


@pytest.fixture(scope="session")
def regression(tmp_path_factory: pytest.TempPathFactory) -> Case:
    frame = load_diabetes(as_frame=True).frame
    folder = tmp_path_factory.mktemp("models") / "diabetes"
    return _case(frame, LinearRegression(), folder, False)
