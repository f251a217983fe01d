"""Flavors: one small plugin per model library, behind the :class:`Flavor` protocol.

A flavor knows how to write a model of its library into a folder and how to read it back
safely. Flavors are found through the ``shipyard.flavors`` entry-point group; the built-in
ones are listed in :data:`BUILTIN_FLAVORS` in the same ``module:attribute`` form and are
loaded the same way, so a built-in is no different from a plugin except that it cannot be
shadowed by one.

Example of a plugin flavor, registered in the plugin's ``pyproject.toml`` with
``[project.entry-points."shipyard.flavors"] mylib = "mylib_shipyard:MyLibFlavor"``::

    class MyLibFlavor:
        name = "mylib"

        def can_save(self, model: object) -> bool:
            return type(model).__module__.startswith("mylib.")

        def save(self, model: object, path: Path) -> dict[str, Any]:
            model.save_native(path / "model.mylib")
            return {"file": "model.mylib"}

        def requirements(self, model: object) -> list[str]:
            return ["mylib"]

        def load(self, path: Path, options: dict[str, Any], *, trusted_code: bool) -> Predictor:
            import mylib

            return mylib.load_native(path / options["file"])
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from shipyard.errors import InvalidArgumentError, NotFoundError

__all__ = [
    "BUILTIN_FLAVORS",
    "ENTRY_POINT_GROUP",
    "Flavor",
    "Predictor",
    "flavor_for",
    "get_flavor",
    "list_flavors",
]

ENTRY_POINT_GROUP = "shipyard.flavors"

BUILTIN_FLAVORS: dict[str, str] = {
    "sklearn": "shipyard.models.sklearn_flavor:SklearnFlavor",
    "python": "shipyard.models.python_flavor:PythonFlavor",
    "xgboost": "shipyard.models.xgboost_flavor:XGBoostFlavor",
    "lightgbm": "shipyard.models.lightgbm_flavor:LightGBMFlavor",
    "onnx": "shipyard.models.onnx_flavor:OnnxFlavor",
    "torch": "shipyard.models.torch_flavor:TorchFlavor",
}
"""Built-in flavors by name, as ``module:attribute`` like an entry point. Order matters:
:func:`flavor_for` asks them in this order, before any plugin."""


@runtime_checkable
class Predictor(Protocol):
    """What a flavor's ``load`` returns: anything with ``predict``.

    ``predict_proba`` is used when present.
    """

    def predict(self, data: Any) -> Any: ...


class Flavor(Protocol):
    """A way to save and load the models of one library.

    ``save`` writes the library's own files into an empty folder and returns options to record
    in ``shipyard-model.json`` (file names, library versions); ``load`` gets them back. ``load``
    must not unpickle or import anything it was not told to trust: it is called only after
    Shipyard has checked the files' digests and, unless the caller opted in, that the folder
    holds no pickle.
    """

    name: str

    def can_save(self, model: object) -> bool:
        """Whether this flavor handles ``model``. Must not import its library to find out."""
        ...

    def save(self, model: object, path: Path) -> dict[str, Any]:
        """Write ``model`` into the folder ``path`` and return the options to record."""
        ...

    def requirements(self, model: object) -> list[str]:
        """Distribution names ``model`` needs at load time (versions are added from the env)."""
        ...

    def load(self, path: Path, options: dict[str, Any], *, trusted_code: bool) -> Predictor:
        """Read the model saved in ``path`` with ``options`` as ``save`` returned them."""
        ...


_cache: dict[str, Flavor] = {}


def _plugin_targets() -> dict[str, str]:
    """Flavors registered by installed distributions (built-in names are not overridable)."""
    found: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in BUILTIN_FLAVORS:
            found.setdefault(ep.name, ep.value)
    return found


def _targets() -> dict[str, str]:
    return {**BUILTIN_FLAVORS, **_plugin_targets()}


def _load_target(name: str, target: str) -> Flavor:
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    flavor = obj() if isinstance(obj, type) else obj
    if getattr(flavor, "name", None) != name:
        raise InvalidArgumentError(
            f"flavor registered as {name!r} ({target}) calls itself {flavor.name!r}"
        )
    return flavor  # type: ignore[no-any-return]


def list_flavors() -> list[str]:
    """Names of the flavors available: the built-ins first, then plugins, sorted."""
    return [*BUILTIN_FLAVORS, *sorted(_plugin_targets())]


def get_flavor(name: str) -> Flavor:
    """The flavor called ``name``.

    Raises:
        NotFoundError: no flavor of that name is installed.
    """
    if name in _cache:
        return _cache[name]
    targets = _targets()
    if name not in targets:
        raise NotFoundError(f"no model flavor {name!r}; available: {', '.join(list_flavors())}")
    flavor = _load_target(name, targets[name])
    _cache[name] = flavor
    return flavor


def flavor_for(model: object) -> Flavor:
    """The first flavor, built-ins first, whose ``can_save`` accepts ``model``.

    Raises:
        InvalidArgumentError: no flavor handles ``model``.
    """
    for name in list_flavors():
        flavor = get_flavor(name)
        if flavor.can_save(model):
            return flavor
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    raise InvalidArgumentError(
        f"no model flavor handles {kind}; pass flavor= one of {', '.join(list_flavors())}, "
        "or wrap the model in a shipyard.models.PythonModel"
    )
