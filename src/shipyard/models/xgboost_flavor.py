"""The XGBoost flavor: boosters and their scikit-learn wrappers in XGBoost's own UBJSON format.

``save_model("model.ubj")`` writes the trees and, for a wrapper such as ``XGBClassifier``, the
wrapper's own attributes (classes, objective); nothing is pickled. Loading builds the wrapper
named in the options, only from :data:`WRAPPERS`, and calls its ``load_model``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from shipyard.artifacts import resolve_inside
from shipyard.errors import InvalidArgumentError, UntrustedModelError
from shipyard.models.flavors import Predictor

__all__ = ["WRAPPERS", "BoosterModel", "XGBoostFlavor"]

WRAPPERS: tuple[str, ...] = (
    "XGBClassifier",
    "XGBRegressor",
    "XGBRanker",
    "XGBRFClassifier",
    "XGBRFRegressor",
)
"""The ``xgboost`` scikit-learn wrapper classes that loading may build."""

_BOOSTER = "Booster"
_FILE = "model.ubj"
_INSTALL_HINT = "the xgboost flavor needs xgboost: pip install 'shipyard-mlops[xgboost]'"


def _installed(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return ""


def _require_xgboost() -> Any:
    try:
        import xgboost
    except ImportError as exc:
        raise InvalidArgumentError(_INSTALL_HINT) from exc
    return xgboost


class BoosterModel:
    """A bare ``xgboost.Booster`` behind ``predict``: its input is wrapped in a DMatrix."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def predict(self, data: Any) -> Any:
        import xgboost

        return self.booster.predict(xgboost.DMatrix(data))


class XGBoostFlavor:
    """Saves ``xgboost.Booster`` and the scikit-learn wrappers as ``model.ubj``."""

    name = "xgboost"

    def can_save(self, model: object) -> bool:
        cls = type(model)
        return cls.__module__.split(".", 1)[0] == "xgboost" and (
            cls.__name__ == _BOOSTER or cls.__name__ in WRAPPERS
        )

    def save(self, model: object, path: Path) -> dict[str, Any]:
        """Write ``model`` with its own ``save_model``.

        Raises:
            InvalidArgumentError: the model is not fitted.
        """
        xgboost = _require_xgboost()
        kind = type(model).__name__
        if isinstance(model, xgboost.XGBModel):
            try:
                model.get_booster()
            except xgboost.core.XGBoostError as exc:
                raise InvalidArgumentError(f"cannot save an unfitted model: {exc}") from exc
        model.save_model(str(path / _FILE))  # type: ignore[attr-defined]
        return {"file": _FILE, "class": kind, "xgboost_version": _installed("xgboost")}

    def requirements(self, model: object) -> list[str]:
        return ["xgboost", "numpy", "scipy"]

    def load(self, path: Path, options: dict[str, Any], *, trusted_code: bool) -> Predictor:
        """Build the recorded class (a wrapper from :data:`WRAPPERS`, or a Booster) and load.

        Raises:
            UntrustedModelError: the options name any other class.
        """
        xgboost = _require_xgboost()
        file = resolve_inside(path, str(options.get("file", _FILE)))
        kind = str(options.get("class", _BOOSTER))
        if kind == _BOOSTER:
            return BoosterModel(xgboost.Booster(model_file=str(file)))
        if kind not in WRAPPERS:
            raise UntrustedModelError(
                f"the model names the class {kind!r}; the xgboost flavor builds only "
                f"{', '.join((_BOOSTER, *WRAPPERS))}"
            )
        model = getattr(xgboost, kind)()
        model.load_model(str(file))
        return model  # type: ignore[no-any-return]
