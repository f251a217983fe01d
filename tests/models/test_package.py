"""Model folders as a whole: flavors, metadata, what loading verifies, import cost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.entities.models import ModelMeta
from shipyard.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from shipyard.models import get_flavor, list_flavors, load_model, read_meta, save_model
from shipyard.models.flavors import BUILTIN_FLAVORS
from tests.models._python_models import Doubler
from tests.models.conftest import Trained

ROOT = Path(__file__).resolve().parents[2]


def test_builtin_flavors_load_like_plugins() -> None:
    assert list_flavors()[:2] == ["sklearn", "python"]
    for name in BUILTIN_FLAVORS:
        assert get_flavor(name).name == name
    with pytest.raises(NotFoundError, match="no model flavor 'no-such-flavor'"):
        get_flavor("no-such-flavor")


def test_a_model_no_flavor_handles_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"no model flavor handles builtins\.dict"):
        save_model({"not": "a model"}, tmp_path / "m")
    with pytest.raises(InvalidArgumentError, match="the sklearn flavor cannot save"):
        save_model(Doubler(), tmp_path / "m", flavor="sklearn")
    assert not (tmp_path / "m").exists()


def test_saving_into_a_used_folder_is_refused(diabetes_ridge: Trained, tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "keep.txt").write_text("mine")
    with pytest.raises(AlreadyExistsError):
        save_model(diabetes_ridge.model, tmp_path / "m")
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["keep.txt"]


def test_meta_round_trips_through_json(wine_logreg: Trained, tmp_path: Path) -> None:
    meta = save_model(wine_logreg.model, tmp_path / "m", input_example=wine_logreg.X.head())
    assert ModelMeta.from_dict(json.loads(json.dumps(meta.to_dict()))) == meta
    assert read_meta(tmp_path / "m") == meta
    assert meta.python_version == ".".join(map(str, sys.version_info[:3]))


def test_loading_what_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="not a saved model"):
        load_model(tmp_path)
    (tmp_path / "shipyard-model.json").write_text('{"format": "other/9"}')
    with pytest.raises(InvalidArgumentError, match="unknown model format"):
        load_model(tmp_path)


def test_a_file_path_that_leaves_the_folder_is_refused(
    diabetes_ridge: Trained, tmp_path: Path
) -> None:
    from shipyard.errors import UnsafePathError

    save_model(diabetes_ridge.model, tmp_path / "m")
    meta_file = tmp_path / "m" / "shipyard-model.json"
    meta = json.loads(meta_file.read_text())
    meta["flavor_options"]["file"] = "../outside.skops"
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(UnsafePathError):
        load_model(tmp_path / "m")


def test_importing_models_loads_no_ml_library() -> None:
    code = (
        "import json, sys; import shipyard.models; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    loaded = set(json.loads(result.stdout))
    assert loaded & {"sklearn", "skops", "numpy", "pandas", "scipy"} == set()


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entry points as if a plugin distribution registering two flavors were installed."""
    from importlib.metadata import EntryPoint

    from shipyard.models import flavors

    installed = [
        EntryPoint("scale", "tests.models._plugin:ScaleFlavor", flavors.ENTRY_POINT_GROUP),
        EntryPoint("sklearn", "tests.models._plugin:ImpostorFlavor", flavors.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(flavors, "entry_points", lambda group: installed)
    monkeypatch.setattr(flavors, "_cache", {})


@pytest.mark.usefixtures("plugins")
def test_plugin_flavor_from_an_entry_point(tmp_path: Path) -> None:
    from tests.models._plugin import Scale

    assert list_flavors() == [*BUILTIN_FLAVORS, "scale"]
    meta = save_model(Scale(3.0), tmp_path / "m", input_example=[1.0, 2.0])
    assert meta.flavor == "scale"
    assert load_model(tmp_path / "m").predict([2.0]) == [6.0]


@pytest.mark.usefixtures("plugins")
def test_a_plugin_cannot_shadow_a_builtin_flavor() -> None:
    from shipyard.models.sklearn_flavor import SklearnFlavor

    assert isinstance(get_flavor("sklearn"), SklearnFlavor)
