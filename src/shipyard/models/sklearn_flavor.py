"""The scikit-learn flavor: estimators and pipelines saved with skops, never with pickle.

skops stores an object tree and, on load, refuses every type not in the list it is given.
That list comes from here: the types skops reports as untrusted in the file are accepted only
when their import path starts with one of :data:`TRUSTED_TYPE_PREFIXES` and none of
:data:`DENIED_TYPE_PREFIXES`. The file's own idea of what is safe is never taken on trust.
"""

from __future__ import annotations

import sys
import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from shipyard.artifacts import resolve_inside
from shipyard.errors import InvalidArgumentError, UntrustedModelError
from shipyard.models.flavors import Predictor

__all__ = [
    "DENIED_TYPE_PREFIXES",
    "TRUSTED_TYPE_PREFIXES",
    "SklearnFlavor",
    "trusted_types",
]

TRUSTED_TYPE_PREFIXES: tuple[str, ...] = ("sklearn.", "numpy.", "scipy.")
"""Types and functions under these import paths may be loaded from a skops file."""

DENIED_TYPE_PREFIXES: tuple[str, ...] = (
    # Functions that read or write files, download data or run test helpers are not model
    # parts, whatever package they live in.
    "numpy.ctypeslib",
    "numpy.distutils",
    "numpy.f2py",
    "numpy.fromfile",
    "numpy.lib.format",
    "numpy.lib.npyio",
    "numpy.load",
    "numpy.memmap",
    "numpy.save",
    "numpy.testing",
    "scipy._lib._testutils",
    "scipy.io",
    "sklearn.datasets",
    "sklearn.utils._testing",
)
"""Exceptions to :data:`TRUSTED_TYPE_PREFIXES`: refused even though the package is trusted."""

_FILE = "model.skops"
_INSTALL_HINT = (
    "the sklearn flavor needs scikit-learn and skops: pip install 'shipyard-mlops[sklearn]'"
)


def trusted_types(untrusted: list[str]) -> list[str]:
    """The subset of ``untrusted`` (as skops reports it) that Shipyard's policy accepts.

    Raises:
        UntrustedModelError: any type is outside the allow-list; the message lists them all.
    """
    refused = sorted(
        name
        for name in untrusted
        if not name.startswith(TRUSTED_TYPE_PREFIXES)
        or name.startswith(DENIED_TYPE_PREFIXES)
        or not _is_class(name)
    )
    if refused:
        raise UntrustedModelError(
            f"the model file holds types outside Shipyard's allow-list: {', '.join(refused)}; "
            f"allowed are types under {', '.join(TRUSTED_TYPE_PREFIXES)}. Save custom code as a "
            "shipyard.models.PythonModel instead"
        )
    return sorted(untrusted)


def _is_class(name: str) -> bool:
    """Whether ``name`` (inside sklearn, numpy or scipy) is a class or a numpy ufunc.

    A stored *function* (say ``numpy.load`` inside a ``FunctionTransformer``) would run when
    the model predicts, so functions are refused however trusted their library is.
    """
    import importlib

    module_name, _, attribute = name.rpartition(".")
    while module_name:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            module_name, _, outer = module_name.rpartition(".")
            attribute = f"{outer}.{attribute}"
            continue
        found: Any = module
        for part in attribute.split("."):
            found = getattr(found, part, None)
            if found is None:
                return False
        import numpy as np

        return isinstance(found, type | np.ufunc)
    return False


def _require_skops() -> Any:
    try:
        import sklearn.utils
    except ImportError as exc:
        raise InvalidArgumentError(_INSTALL_HINT) from exc
    if "skops.io" not in sys.modules:
        # skops builds its *default* trust list at import time from all_estimators(), which
        # imports every scikit-learn submodule (and torch, through array_api_compat): ~3-4 s.
        # Shipyard never uses that default — every load passes the types our own allow-list
        # accepted — so the list is built empty. The lock keeps two first loads racing here
        # from restoring each other's stand-in instead of the real function.
        with _SKOPS_IMPORT_LOCK:
            real = sklearn.utils.all_estimators
            sklearn.utils.all_estimators = _no_estimators
            try:
                import skops.io
            except ImportError as exc:
                raise InvalidArgumentError(_INSTALL_HINT) from exc
            finally:
                sklearn.utils.all_estimators = real
    import skops.io

    return skops.io


_SKOPS_IMPORT_LOCK = threading.Lock()


def _no_estimators(*args: Any, **kwargs: Any) -> list[tuple[str, type]]:
    return []


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return ""


_OWN_FLAVOR_PACKAGES = frozenset({"xgboost", "lightgbm"})


class SklearnFlavor:
    """Saves scikit-learn estimators (pipelines included) as ``model.skops``."""

    name = "sklearn"

    def can_save(self, model: object) -> bool:
        """Whether ``model`` is a scikit-learn estimator with ``predict``."""
        if "sklearn" not in sys.modules:
            return False
        from sklearn.base import BaseEstimator

        # XGBoost's and LightGBM's scikit-learn wrappers have flavors of their own, which
        # save them in their native formats.
        if type(model).__module__.split(".")[0] in _OWN_FLAVOR_PACKAGES:
            return False
        return isinstance(model, BaseEstimator) and callable(getattr(model, "predict", None))

    def save(self, model: object, path: Path) -> dict[str, Any]:
        """Write ``model`` to ``path/model.skops``, after checking it will load again.

        Raises:
            InvalidArgumentError: the estimator is not fitted.
            UntrustedModelError: it holds a type Shipyard would refuse to load (a custom
                class, a lambda), so the saved model would be of no use.
        """
        sio = _require_skops()
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(model)
        except NotFittedError as exc:
            raise InvalidArgumentError(f"cannot save an unfitted model: {exc}") from exc
        data = sio.dumps(model)
        trusted_types(sio.get_untrusted_types(data=data))
        (path / _FILE).write_bytes(data)
        return {
            "file": _FILE,
            "sklearn_version": _version("scikit-learn"),
            "skops_version": _version("skops"),
        }

    def requirements(self, model: object) -> list[str]:
        return ["scikit-learn", "skops", "numpy", "scipy"]

    def load(self, path: Path, options: dict[str, Any], *, trusted_code: bool) -> Predictor:
        """Load ``model.skops`` with the trusted types Shipyard's policy allows.

        ``trusted_code`` does not widen the allow-list: a skops file is data, not code.

        Raises:
            UntrustedModelError: the file holds a type outside the allow-list.
        """
        sio = _require_skops()
        file = resolve_inside(path, str(options.get("file", _FILE)))
        data = file.read_bytes()
        trusted = trusted_types(sio.get_untrusted_types(data=data))
        model = sio.loads(data, trusted=trusted)
        if not callable(getattr(model, "predict", None)):
            raise UntrustedModelError(f"{file.name} holds a {type(model).__name__}, not a model")
        return model  # type: ignore[no-any-return]
