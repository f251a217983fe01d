"""XGBoost, LightGBM, ONNX and PyTorch models: saved in their own formats, loaded safely."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shipyard.errors import InputMismatchError, UntrustedModelError
from shipyard.models import flavor_for, is_pickle_file, load_model, save_model, scan_pickles
from tests.models.conftest import Trained, rewrite_digests

xgboost = pytest.importorskip("xgboost")
lightgbm = pytest.importorskip("lightgbm")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
skl2onnx = pytest.importorskip("skl2onnx")
torch = pytest.importorskip("torch")


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _no_pickle(folder: Path) -> None:
    assert scan_pickles(folder) == []
    assert not any(is_pickle_file(p) for p in folder.rglob("*"))


def _missing_column(model: Any, frame: Any) -> None:
    with pytest.raises(InputMismatchError) as caught:
        model.predict(frame.drop(columns=frame.columns[0]))
    assert caught.value.field == frame.columns[0]


@pytest.mark.parametrize("kind", ["XGBClassifier", "LGBMClassifier"])
def test_scikit_learn_wrappers_get_their_own_flavor(
    kind: str, cancer_frame: tuple[Any, Any]
) -> None:
    X, y = cancer_frame
    module = xgboost if kind.startswith("XGB") else lightgbm
    extra = {"verbose": -1} if module is lightgbm else {}
    model = getattr(module, kind)(n_estimators=2, **extra).fit(X, y)
    assert flavor_for(model).name == module.__name__


def test_boosters_are_detected(cancer_frame: tuple[Any, Any]) -> None:
    X, y = cancer_frame
    xgb = xgboost.train({"max_depth": 2}, xgboost.DMatrix(X, label=y), num_boost_round=2)
    lgb = lightgbm.train(
        {"verbose": -1, "objective": "binary"}, lightgbm.Dataset(X, label=y), num_boost_round=2
    )
    assert flavor_for(xgb).name == "xgboost"
    assert flavor_for(lgb).name == "lightgbm"


# --- XGBoost ---------------------------------------------------------------------------------


def test_xgboost_classifier_round_trip(cancer_frame: tuple[Any, Any], tmp_path: Path) -> None:
    X, y = cancer_frame
    clf = xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(X, y)
    meta = save_model(clf, tmp_path / "m", input_example=X.head(), flavor="xgboost")
    assert meta.flavor == "xgboost" and meta.flavor_options["class"] == "XGBClassifier"
    assert _files(tmp_path / "m") == ["input_example.json", "model.ubj", "shipyard-model.json"]
    _no_pickle(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    _missing_column(loaded, X)


def test_xgboost_regressor_and_booster(tmp_path: Path) -> None:
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    reg = xgboost.XGBRegressor(n_estimators=20, max_depth=3).fit(X, y)
    save_model(reg, tmp_path / "reg", input_example=X[:5], flavor="xgboost")
    loaded = load_model(tmp_path / "reg")
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))
    assert not loaded.has_predict_proba
    with pytest.raises(InputMismatchError, match="10 features, got 9"):
        loaded.predict(X[:, 1:])

    booster = reg.get_booster()
    assert flavor_for(booster).name == "xgboost"
    save_model(booster, tmp_path / "booster", input_example=X[:5])
    native = booster.predict(xgboost.DMatrix(X))
    np.testing.assert_array_equal(load_model(tmp_path / "booster").predict(X), native)


def test_xgboost_refuses_a_class_outside_its_list(
    cancer_frame: tuple[Any, Any], tmp_path: Path
) -> None:
    X, y = cancer_frame
    save_model(xgboost.XGBClassifier(n_estimators=2).fit(X, y), tmp_path / "m", flavor="xgboost")
    assert _files(tmp_path / "m") == ["model.ubj", "shipyard-model.json"]  # no example given
    meta_file = tmp_path / "m" / "shipyard-model.json"
    meta = json.loads(meta_file.read_text())
    meta["flavor_options"]["class"] = "DMatrix"
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(UntrustedModelError, match="DMatrix"):
        load_model(tmp_path / "m")


# --- LightGBM --------------------------------------------------------------------------------


def test_lightgbm_classifier_round_trip(tmp_path: Path) -> None:
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True, as_frame=True)
    clf = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(X, y)
    meta = save_model(clf, tmp_path / "m", input_example=X.head(), flavor="lightgbm")
    assert meta.flavor_options["classes"] == [0, 1, 2]
    assert _files(tmp_path / "m") == ["input_example.json", "model.txt", "shipyard-model.json"]
    _no_pickle(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X))
    _missing_column(loaded, X)


def test_lightgbm_binary_labels_and_regressor(
    cancer_frame: tuple[Any, Any], tmp_path: Path
) -> None:
    from sklearn.datasets import load_diabetes

    X, y = cancer_frame
    labels = np.where(y == 1, "benign", "malignant")
    clf = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, labels)
    save_model(clf, tmp_path / "clf", input_example=X.head(), flavor="lightgbm")
    loaded = load_model(tmp_path / "clf")
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X))

    Xd, yd = load_diabetes(return_X_y=True)
    reg = lightgbm.LGBMRegressor(n_estimators=10, verbose=-1).fit(Xd, yd)
    save_model(reg, tmp_path / "reg", input_example=Xd[:5], flavor="lightgbm")
    loaded_reg = load_model(tmp_path / "reg")
    np.testing.assert_allclose(loaded_reg.predict(Xd), reg.predict(Xd))
    assert not loaded_reg.has_predict_proba


# --- ONNX ------------------------------------------------------------------------------------


def _onnx_logreg(X: Any, y: Any) -> tuple[Any, Any]:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    proto = to_onnx(clf, X[:1].astype(np.float32), options={"zipmap": False})
    return clf, proto


def test_onnx_classifier_round_trip(cancer_frame: tuple[Any, Any], tmp_path: Path) -> None:
    X, y = cancer_frame
    array = X.to_numpy()
    clf, proto = _onnx_logreg(array, y.to_numpy())
    assert flavor_for(proto).name == "onnx"
    meta = save_model(proto, tmp_path / "m", input_example=X.head())
    assert meta.flavor == "onnx"
    assert _files(tmp_path / "m") == ["input_example.json", "model.onnx", "shipyard-model.json"]
    _no_pickle(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(array))
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(array), atol=1e-4)
    _missing_column(loaded, X)


def test_onnx_from_a_file_with_zipmap(tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_wine
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_wine(return_X_y=True)
    X = X.astype(np.float32)
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    file = tmp_path / "tree.onnx"
    file.write_bytes(to_onnx(tree, X[:1]).SerializeToString())
    assert flavor_for(str(file)).name == "onnx"
    save_model(file, tmp_path / "m", input_example=X[:3])
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(X), tree.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), tree.predict_proba(X), atol=1e-6)
    with pytest.raises(InputMismatchError, match="13 features, got 12"):
        loaded.predict(X[:, 1:])


def test_onnx_regressor_has_no_predict_proba(tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True)
    ridge = Ridge().fit(X, y)
    save_model(to_onnx(ridge, X[:1].astype(np.float32)), tmp_path / "m", input_example=X[:3])
    loaded = load_model(tmp_path / "m")
    assert not loaded.has_predict_proba
    np.testing.assert_allclose(loaded.predict(X).ravel(), ridge.predict(X), rtol=1e-4, atol=1e-3)


# --- PyTorch ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wine_net() -> Trained:
    """A small softmax network trained for a few steps on the standardised wine data."""
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True, as_frame=True)
    X = (X - X.mean()) / X.std()
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(13, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3), torch.nn.Softmax(dim=1)
    )
    optimiser = torch.optim.Adam(net.parameters(), lr=0.05)
    inputs = torch.tensor(X.to_numpy(), dtype=torch.float32)
    targets = torch.tensor(y.to_numpy())
    for _ in range(50):
        optimiser.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(net(inputs)), targets)
        loss.backward()
        optimiser.step()
    return Trained(net, X, y)


def _native(net: Any, data: Any) -> Any:
    with torch.no_grad():
        return net(torch.tensor(np.asarray(data), dtype=torch.float32)).numpy()


def test_torch_module_round_trip(wine_net: Trained, tmp_path: Path) -> None:
    X = wine_net.X
    assert flavor_for(wine_net.model).name == "torch"
    meta = save_model(wine_net.model, tmp_path / "m", input_example=X.head())
    assert meta.flavor == "torch" and meta.flavor_options["input_dtype"] == "float32"
    assert _files(tmp_path / "m") == ["input_example.json", "model.pt2", "shipyard-model.json"]
    _no_pickle(tmp_path / "m")
    assert wine_net.model.training  # exporting did not leave the module in eval mode
    loaded = load_model(tmp_path / "m", trusted_code=True)
    out = loaded.predict(X)
    assert isinstance(out, np.ndarray) and out.shape == (len(X), 3)
    np.testing.assert_allclose(out, _native(wine_net.model, X), rtol=1e-5, atol=1e-6)
    assert (out.argmax(axis=1) == wine_net.y.to_numpy()).mean() > 0.9
    np.testing.assert_allclose(loaded.predict(X.head(1)), _native(wine_net.model, X.head(1)))
    _missing_column(loaded, X)


def test_torch_needs_trusted_code_to_load(wine_net: Trained, tmp_path: Path) -> None:
    save_model(wine_net.model, tmp_path / "m", input_example=wine_net.X.head())
    with pytest.raises(UntrustedModelError, match="trusted_code=True"):
        load_model(tmp_path / "m")


def test_torch_exported_program_with_a_tensor_signature(tmp_path: Path) -> None:
    from sklearn.datasets import load_diabetes

    X, _ = load_diabetes(return_X_y=True)
    X = X.astype(np.float32)
    net = torch.nn.Sequential(torch.nn.Linear(10, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    net.eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(net, (torch.tensor(X[:4]),), dynamic_shapes=({0: batch},))
    assert flavor_for(program).name == "torch"
    save_model(program, tmp_path / "m", input_example=X[:4])
    loaded = load_model(tmp_path / "m", trusted_code=True)
    np.testing.assert_allclose(loaded.predict(X), _native(net, X), rtol=1e-5, atol=1e-6)
    with pytest.raises(InputMismatchError, match="10 features, got 9"):
        loaded.predict(X[:, 1:])


def _rewrite_member(file: Path, member_suffix: str, edit: Any) -> None:
    with zipfile.ZipFile(file) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(file, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, edit(data) if name.endswith(member_suffix) else data)


def test_torch_archive_calling_a_non_aten_function_is_refused(
    wine_net: Trained, tmp_path: Path
) -> None:
    save_model(wine_net.model, tmp_path / "m")
    _rewrite_member(
        tmp_path / "m" / "model.pt2",
        "models/model.json",
        lambda data: data.replace(b"torch.ops.aten.relu.default", b"torch.load"),
    )
    rewrite_digests(tmp_path / "m")
    with pytest.raises(UntrustedModelError, match=r"torch\.load"):
        load_model(tmp_path / "m", trusted_code=True)


def test_torch_archive_with_code_in_a_shape_expression_is_refused(
    wine_net: Trained, tmp_path: Path
) -> None:
    save_model(wine_net.model, tmp_path / "m")
    _rewrite_member(
        tmp_path / "m" / "model.pt2",
        "models/model.json",
        lambda data: data.replace(b"Symbol(", b"__import__('os').system('true') or Symbol(", 1),
    )
    rewrite_digests(tmp_path / "m")
    with pytest.raises(UntrustedModelError, match="shape expression"):
        load_model(tmp_path / "m", trusted_code=True)


def test_torch_archive_with_a_dangerous_pickle_is_refused(
    wine_net: Trained, tmp_path: Path
) -> None:
    import pickle

    class Boom:
        def __reduce__(self) -> Any:
            import os

            return (os.system, ("true",))

    save_model(wine_net.model, tmp_path / "m")
    payload = pickle.dumps(Boom())
    with zipfile.ZipFile(tmp_path / "m" / "model.pt2", "a") as archive:
        archive.writestr("model/data/sample_inputs/extra.pt", payload)
    rewrite_digests(tmp_path / "m")
    with pytest.raises(UntrustedModelError, match="system"):
        load_model(tmp_path / "m", trusted_code=True)
