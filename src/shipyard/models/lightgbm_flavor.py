"""The LightGBM flavor: boosters and their scikit-learn wrappers in LightGBM's own text format.

The trees go to ``model.txt`` (``Booster.save_model``); for ``LGBMClassifier`` the class labels
are recorded in the options so that the loaded model gives the wrapper's ``predict`` (labels)
and ``predict_proba`` (one column per class). Nothing is pickled.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from shipyard.artifacts import resolve_inside
from shipyard.errors import InvalidArgumentError
from shipyard.models.flavors import Predictor

__all__ = ["LightGBMClassifierModel", "LightGBMFlavor", "LightGBMModel"]

_FILE = "model.txt"
_KINDS = ("Booster", "LGBMClassifier", "LGBMRegressor", "LGBMRanker", "LGBMModel")
_INSTALL_HINT = "the lightgbm flavor needs lightgbm: pip install 'shipyard-mlops[lightgbm]'"


def _installed(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return ""


def _require_lightgbm() -> Any:
    try:
        import lightgbm
    except ImportError as exc:
        raise InvalidArgumentError(_INSTALL_HINT) from exc
    return lightgbm


class LightGBMModel:
    """A ``lightgbm.Booster`` behind ``predict``: raw predictions (values, scores)."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def predict(self, data: Any) -> Any:
        return self.booster.predict(data)


class LightGBMClassifierModel(LightGBMModel):
    """A classifier's booster with its class labels, predicting as ``LGBMClassifier`` does."""

    def __init__(self, booster: Any, classes: list[Any]) -> None:
        import numpy as np

        super().__init__(booster)
        self.classes_ = np.asarray(classes)

    def predict_proba(self, data: Any) -> Any:
        """One column per class, in the order of ``classes_``."""
        import numpy as np

        scores = np.asarray(self.booster.predict(data))
        if scores.ndim == 1:  # binary: the probability of the second class
            return np.column_stack((1.0 - scores, scores))
        return scores

    def predict(self, data: Any) -> Any:
        """The most probable class label for each row."""
        return self.classes_[self.predict_proba(data).argmax(axis=1)]


class LightGBMFlavor:
    """Saves ``lightgbm.Booster`` and the scikit-learn wrappers as ``model.txt``."""

    name = "lightgbm"

    def can_save(self, model: object) -> bool:
        cls = type(model)
        return cls.__module__.split(".", 1)[0] == "lightgbm" and cls.__name__ in _KINDS

    def save(self, model: object, path: Path) -> dict[str, Any]:
        """Write the booster with its own ``save_model``.

        Raises:
            InvalidArgumentError: the model is not fitted.
        """
        lightgbm = _require_lightgbm()
        kind = type(model).__name__
        options: dict[str, Any] = {
            "file": _FILE,
            "class": kind,
            "lightgbm_version": _installed("lightgbm"),
        }
        if isinstance(model, lightgbm.Booster):
            booster = model
        else:
            if not getattr(model, "__sklearn_is_fitted__", lambda: False)():
                raise InvalidArgumentError(f"cannot save an unfitted {kind}")
            booster = model.booster_  # type: ignore[attr-defined]
            if isinstance(model, lightgbm.LGBMClassifier):
                options["classes"] = model.classes_.tolist()
        booster.save_model(str(path / _FILE))
        return options

    def requirements(self, model: object) -> list[str]:
        return ["lightgbm", "numpy", "scipy"]

    def load(self, path: Path, options: dict[str, Any], *, trusted_code: bool) -> Predictor:
        """Read ``model.txt`` into a Booster, with the class labels of a classifier."""
        lightgbm = _require_lightgbm()
        file = resolve_inside(path, str(options.get("file", _FILE)))
        booster = lightgbm.Booster(model_file=str(file))
        classes = options.get("classes")
        if classes is not None:
            return LightGBMClassifierModel(booster, list(classes))
        return LightGBMModel(booster)
