"""run.log_model -> registry -> shipyard.models.load, on both stores."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import shipyard
from shipyard import data
from shipyard.errors import InputMismatchError, InvalidArgumentError, NotFoundError
from shipyard.registry import Registry

pytestmark = pytest.mark.integration


def test_log_register_alias_and_load(home: Path) -> None:
    frame = load_breast_cancer(as_frame=True).frame
    data.add(frame, "cancer")
    with shipyard.start_run(experiment="cancer", log_code=False) as run:
        table = data.load("cancer@1")
        x, y = table.drop(columns="target"), table["target"]
        clf = LogisticRegression(max_iter=5000).fit(x, y)
        first = run.log_model(clf, "cancer-clf", input_example=x.head())
        second = run.log_model(clf, "cancer-clf", input_example=x.head())
    assert (first.ref, second.ref) == ("cancer-clf@1", "cancer-clf@2")
    assert first.run_id == run.run_id and first.flavor == "sklearn"
    workspace = shipyard.open_workspace()
    registry = Registry(workspace.backend, workspace.settings.user)
    registry.set_alias("cancer-clf@1", "champion")
    for ref in ("cancer-clf@champion", "cancer-clf@1", "cancer-clf", "cancer-clf@latest"):
        model = shipyard.models.load(ref)
        np.testing.assert_array_equal(model.predict(x.head(20)), clf.predict(x.head(20)))
    with pytest.raises(InputMismatchError):
        shipyard.models.load("cancer-clf@champion").predict(x.drop(columns=x.columns[0]))
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        shipyard.models.load("cancer-clf@staging")
    records = {r.path for r in workspace.backend.list_artifacts(run.run_id)}
    assert "models/cancer-clf" in records
    assert [v.ref for _, v in workspace.backend.run_dataset_versions([run.run_id], "input")] == [
        "cancer@1"
    ]


def _trained(home: Path) -> tuple[object, object]:
    frame = load_breast_cancer(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    return LogisticRegression(max_iter=5000).fit(x, y), x


def test_an_edited_cache_is_fetched_again(home: Path) -> None:
    clf, x = _trained(home)
    with shipyard.start_run(experiment="e", log_code=False) as run:
        version = run.log_model(clf, "m", input_example=x.head())
    shipyard.models.load("m@1")
    cached = home / "cache" / "models" / version.digest
    meta = cached / "shipyard-model.json"
    os.chmod(meta, 0o644)
    meta.write_text(meta.read_text().replace('"signature"', '"signaturX"'))
    (cached / "extra.py").write_text("print('not part of the model')")
    model = shipyard.models.load("m@1")  # verified again: fetched afresh from the store
    with pytest.raises(InputMismatchError):
        model.predict(x.drop(columns=x.columns[0]))
    assert not (cached / "extra.py").exists()


def test_bad_model_names_write_nothing(home: Path, tmp_path: Path) -> None:
    clf, x = _trained(home)
    with shipyard.start_run(experiment="e", log_code=False) as run:
        for name in ("../escaped", "bad name!"):
            with pytest.raises(InvalidArgumentError, match="invalid model name"):
                run.log_model(clf, name, input_example=x.head())
    assert shipyard.open_workspace().backend.list_artifacts(run.run_id) == []
    assert not (tmp_path.parent / "escaped").exists()


def test_missing_values_in_an_integer_column_are_an_input_mismatch(home: Path) -> None:
    import pandas as pd
    from sklearn.tree import DecisionTreeClassifier

    x = pd.DataFrame({"a": [1, 2, 3, 4], "b": [0, 1, 0, 1]})
    clf = DecisionTreeClassifier().fit(x, [0, 1, 0, 1])
    with shipyard.start_run(experiment="e", log_code=False) as run:
        run.log_model(clf, "ints", input_example=x)
    bad = pd.DataFrame({"a": pd.array([1, None], dtype="Int64"), "b": [0, 1]})
    with pytest.raises(InputMismatchError) as caught:
        shipyard.models.load("ints").predict(bad)
    assert caught.value.field == "a"


def test_stored_functions_are_refused_even_from_trusted_libraries(tmp_path: Path) -> None:
    """A FunctionTransformer holding a numpy *function* would run it at predict time."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from shipyard.errors import UntrustedModelError
    from shipyard.models import save_model

    frame = load_breast_cancer(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    risky = make_pipeline(FunctionTransformer(np.sort), LogisticRegression(max_iter=5000))
    with pytest.raises(UntrustedModelError, match="numpy"):
        save_model(risky.fit(x, y), tmp_path / "m", input_example=x.head())
    fine = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=5000))
    save_model(fine.fit(x, y), tmp_path / "ok", input_example=x.head())  # a ufunc is a type
