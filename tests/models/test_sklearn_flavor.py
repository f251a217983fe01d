"""scikit-learn models: saved with skops, loaded only with types Shipyard's policy allows."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import FunctionTransformer

from shipyard.models import META_FILE, UntrustedModelError, load_model, read_meta, save_model
from shipyard.models.sklearn_flavor import trusted_types
from tests.models.conftest import Trained, rewrite_digests


class Constant(ClassifierMixin, BaseEstimator):
    """A custom estimator: not under sklearn/numpy/scipy, so skops must refuse it."""

    def fit(self, X: Any, y: Any) -> Constant:
        self.classes_ = np.unique(y)
        return self

    def predict(self, X: Any) -> Any:
        return np.full(len(X), self.classes_[0])


@pytest.mark.parametrize(
    "name", ["cancer_logreg", "cancer_forest", "diabetes_ridge", "wine_logreg"]
)
def test_round_trip_gives_identical_predictions(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    trained: Trained = request.getfixturevalue(name)
    meta = save_model(trained.model, tmp_path / "m", input_example=trained.X[:5])
    assert meta.flavor == "sklearn"
    assert (tmp_path / "m" / "model.skops").is_file()
    assert not list((tmp_path / "m").rglob("*.pkl"))

    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(trained.X), trained.model.predict(trained.X))
    if hasattr(trained.model, "predict_proba"):
        assert loaded.has_predict_proba
        np.testing.assert_array_equal(
            loaded.predict_proba(trained.X), trained.model.predict_proba(trained.X)
        )
    else:
        assert not loaded.has_predict_proba
    assert loaded.meta == read_meta(tmp_path / "m")
    assert loaded.environment_mismatches() == []


def test_metadata_records_flavor_requirements_and_digests(
    wine_logreg: Trained, tmp_path: Path
) -> None:
    save_model(wine_logreg.model, tmp_path / "m", input_example=wine_logreg.X.head(3))
    raw = json.loads((tmp_path / "m" / META_FILE).read_text())
    assert raw["format"] == "shipyard.model/1"
    assert raw["flavor"] == "sklearn"
    assert raw["model_type"] == "sklearn.pipeline.Pipeline"
    names = {r.split("==")[0] for r in raw["requirements"]}
    assert {"scikit-learn", "skops", "numpy", "scipy", "shipyard-mlops"} <= names
    assert all("==" in r for r in raw["requirements"])
    assert [f["path"] for f in raw["files"]] == ["input_example.json", "model.skops"]
    assert all(len(f["digest"]) == 64 for f in raw["files"])
    assert raw["input_example"] == "input_example.json"
    assert raw["signature"]["outputs"] == [{"name": "output", "type": "int64", "shape": [-1]}]


def test_user_requirements_win_over_inferred_pins(diabetes_ridge: Trained, tmp_path: Path) -> None:
    meta = save_model(
        diabetes_ridge.model, tmp_path / "m", requirements=["scikit-learn>=1.4", "pyyaml"]
    )
    assert "scikit-learn>=1.4" in meta.requirements
    assert "pyyaml" in meta.requirements
    assert not any(r.startswith("scikit-learn==") for r in meta.requirements)


def test_saving_a_custom_type_is_refused_and_leaves_nothing(
    cancer_frame: tuple[Any, Any], tmp_path: Path
) -> None:
    X, y = cancer_frame
    with pytest.raises(UntrustedModelError, match=r"tests\.models\.test_sklearn_flavor\.Constant"):
        save_model(Constant().fit(X, y), tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_skops_file_with_a_type_outside_the_allow_list_is_refused(
    cancer_frame: tuple[Any, Any], diabetes_ridge: Trained, tmp_path: Path
) -> None:
    import skops.io as sio

    X, y = cancer_frame
    model_dir = tmp_path / "m"
    save_model(diabetes_ridge.model, model_dir)
    # The file is swapped for one holding a custom class, as a tampered upload would be.
    (model_dir / "model.skops").write_bytes(sio.dumps(Constant().fit(X, y)))
    rewrite_digests(model_dir)
    with pytest.raises(UntrustedModelError, match=r"outside Shipyard's allow-list.*Constant"):
        load_model(model_dir)
    # Opting in to code or pickles does not widen what a skops file may hold.
    with pytest.raises(UntrustedModelError):
        load_model(model_dir, trusted_code=True, trusted_pickle=True)


def test_skops_file_calling_os_system_is_refused(diabetes_ridge: Trained, tmp_path: Path) -> None:
    import skops.io as sio

    model_dir = tmp_path / "m"
    save_model(diabetes_ridge.model, model_dir)
    evil = FunctionTransformer(func=os.system).fit(diabetes_ridge.X)
    (model_dir / "model.skops").write_bytes(sio.dumps(evil))
    rewrite_digests(model_dir)
    with pytest.raises(UntrustedModelError, match=r"(posix|nt)\.system"):
        load_model(model_dir)


def test_allow_list_is_ours_not_the_files() -> None:
    assert trusted_types(["sklearn.tree._tree.Tree", "numpy.float64"]) == [
        "numpy.float64",
        "sklearn.tree._tree.Tree",
    ]
    for bad in ("builtins.eval", "sklearnx.Evil", "numpy.load", "sklearn.datasets.fetch_openml"):
        with pytest.raises(UntrustedModelError, match=bad.replace(".", r"\.")):
            trusted_types(["sklearn.tree._tree.Tree", bad])


def test_tampered_model_file_fails_its_digest(diabetes_ridge: Trained, tmp_path: Path) -> None:
    from shipyard.errors import ArtifactCorruptedError

    save_model(diabetes_ridge.model, tmp_path / "m")
    with (tmp_path / "m" / "model.skops").open("ab") as file:
        file.write(b"\0")
    with pytest.raises(ArtifactCorruptedError, match=r"model\.skops"):
        load_model(tmp_path / "m")


def test_unfitted_model_is_refused(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from shipyard.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="unfitted"):
        save_model(LogisticRegression(), tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_loading_does_not_import_every_sklearn_module(
    cancer_forest: Trained, tmp_path: Path
) -> None:
    """skops's default trust list walks all_estimators() (seconds, and torch); we skip it."""
    import subprocess
    import sys

    save_model(cancer_forest.model, tmp_path / "m", input_example=cancer_forest.X[:5])
    script = (
        "import sys, sklearn.utils\n"
        "real = sklearn.utils.all_estimators\n"
        "from shipyard.models import load_model\n"
        f"model = load_model({str(tmp_path / 'm')!r})\n"
        "assert len(model.predict([[0.0] * 30])) == 1\n"
        "assert sklearn.utils.all_estimators is real, 'stand-in left in place'\n"
        "print(sorted(m for m in ('torch', 'sklearn.semi_supervised', 'sklearn.gaussian_process')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
