"""PythonModel: saved by import path with an artifacts folder, loaded only when trusted."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.models import PythonModel, UntrustedModelError, load_model, save_model
from tests.models import _importable_only
from tests.models._python_models import Doubler, FromPickle, Threshold
from tests.models.conftest import rewrite_digests
from tests.models.test_scan import malicious_bytes


@pytest.fixture
def cut_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "cut"
    folder.mkdir()
    (folder / "cut.json").write_text(json.dumps({"cut": 0.5}))
    return folder


def test_round_trip_with_artifacts_and_a_signature(cut_dir: Path, tmp_path: Path) -> None:
    frame = pd.DataFrame({"score": [0.1, 0.7, 0.4, 0.9]})
    meta = save_model(Threshold(), tmp_path / "m", artifacts=cut_dir, input_example=frame)
    assert meta.flavor == "python"
    assert meta.flavor_options["class"] == "tests.models._python_models:Threshold"
    assert [f.path for f in meta.files] == ["artifacts/cut.json", "input_example.json"]

    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(frame), [0, 1, 0, 1])
    assert isinstance(loaded.model, Threshold)
    assert not loaded.has_predict_proba
    with pytest.raises(InvalidArgumentError, match="no predict_proba"):
        loaded.predict_proba(frame)
    with pytest.raises(InvalidArgumentError, match="missing column 'score'"):
        loaded.predict(pd.DataFrame({"other": [1.0]}))


def test_unsaved_state_must_come_from_artifacts(tmp_path: Path) -> None:
    save_model(Doubler(), tmp_path / "m", input_example=np.ones((2, 3)))
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(np.ones((1, 3))), [[2, 2, 2]])
    with pytest.raises(InvalidArgumentError, match="expects 3 features, got 2"):
        loaded.predict(np.ones((1, 2)))


def test_class_in_main_or_a_function_is_refused(tmp_path: Path) -> None:
    class Local(PythonModel):
        def predict(self, data: Any) -> Any:
            return data

    with pytest.raises(InvalidArgumentError, match="inside a function"):
        save_model(Local(), tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_importing_a_module_needs_trusted_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_model(_importable_only.Negate(), tmp_path / "m")
    monkeypatch.delitem(sys.modules, _importable_only.__name__)
    with pytest.raises(UntrustedModelError, match="trusted_code=True"):
        load_model(tmp_path / "m")
    assert _importable_only.__name__ not in sys.modules
    loaded = load_model(tmp_path / "m", trusted_code=True)
    np.testing.assert_array_equal(loaded.predict(np.array([1, -2])), [-1, 2])


def test_a_class_that_is_not_a_python_model_is_refused(tmp_path: Path) -> None:
    save_model(Doubler(), tmp_path / "m")
    meta_file = tmp_path / "m" / "shipyard-model.json"
    meta = json.loads(meta_file.read_text())
    meta["flavor_options"]["class"] = "os:system"
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(UntrustedModelError, match=r"not a shipyard\.models\.PythonModel"):
        load_model(tmp_path / "m", trusted_code=True)


def test_pickle_artifact_needs_trusted_pickle(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "state.pkl").write_bytes(pickle.dumps({"offset": 10}))
    meta = save_model(FromPickle(), tmp_path / "m", artifacts=state)
    assert [f.path for f in meta.files] == ["artifacts/state.pkl"]  # no example given
    with pytest.raises(UntrustedModelError, match=r"artifacts/state\.pkl.*trusted_pickle=True"):
        load_model(tmp_path / "m")
    loaded = load_model(tmp_path / "m", trusted_pickle=True)
    np.testing.assert_array_equal(loaded.predict(np.array([1, 2])), [11, 12])


def test_malicious_pickle_is_refused_and_named(tmp_path: Path) -> None:
    save_model(Doubler(), tmp_path / "m")
    (tmp_path / "m" / "artifacts").mkdir()
    (tmp_path / "m" / "artifacts" / "weights.bin").write_bytes(malicious_bytes())
    rewrite_digests(tmp_path / "m")
    with pytest.raises(UntrustedModelError, match=r"weights\.bin \(imports (posix|nt)\.system\)"):
        load_model(tmp_path / "m")
