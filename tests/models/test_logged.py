"""run.log_model -> registry -> shipyard.models.load, on both stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import shipyard
from shipyard import data
from shipyard.errors import InputMismatchError, NotFoundError
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
