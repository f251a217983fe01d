"""How step outputs become files in the artifact store, chosen by type, never pickle by default.

============  ==========================================  =====================
materializer  handles                                     stored as
============  ==========================================  =====================
``json``      None, bool, int, float, str, lists, dicts   ``output.json``
``numpy``     numpy arrays (not of objects)               ``output.npy``
``pandas``    pandas DataFrames and Series                ``output.parquet``
``arrow``     pyarrow Tables                              ``output.parquet``
``model``     any model a flavor saves (skops, ONNX, …)   the flavor's folder
``pickle``    anything else, only with ``allow_pickle``   ``output.pkl``
============  ==========================================  =====================

A materializer's version is part of every cache key, so a change in how outputs are written
re-runs the steps instead of reading old files the new way. Plugins register more under the
``shipyard.materializers`` entry-point group; they are asked first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from shipyard.errors import InvalidArgumentError

__all__ = [
    "ENTRY_POINT_GROUP",
    "Materializer",
    "choose",
    "get_materializer",
    "materializer_versions",
    "type_name",
]

ENTRY_POINT_GROUP = "shipyard.materializers"


class Materializer(Protocol):
    """Writes one kind of Python object to the artifact store and reads it back.

    ``kind`` is ``file`` (``save`` writes the file ``path``) or ``dir`` (``save`` fills the
    new folder ``path``). ``handles`` must not import a library to decide.

    Example:
        >>> class TextMaterializer:
        ...     name, version, kind = "text", 1, "file"
        ...     def handles(self, obj): return isinstance(obj, MyText)
        ...     def save(self, obj, path): path.write_text(obj.body)
        ...     def load(self, path, type_name): return MyText(path.read_text())
    """

    name: str
    version: int
    kind: str

    def handles(self, obj: object) -> bool: ...
    def save(self, obj: Any, path: Path) -> None: ...
    def load(self, path: Path, type_name: str) -> Any: ...


def _module_of(obj: object) -> str:
    return type(obj).__module__.split(".")[0]


def _is_json(value: Any, depth: int = 0) -> bool:
    if depth > 100:
        return False
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return True
    if isinstance(value, list | tuple):
        return all(_is_json(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v, depth + 1) for k, v in value.items())
    return False


class JsonMaterializer:
    name, version, kind = "json", 1, "file"

    def handles(self, obj: object) -> bool:
        return type(obj) in (type(None), bool, int, float, str, list, tuple, dict) and _is_json(obj)

    def save(self, obj: Any, path: Path) -> None:
        text = json.dumps(obj, sort_keys=True, allow_nan=True, separators=(",", ":"))
        path.write_text(text, encoding="utf-8")

    def load(self, path: Path, type_name: str) -> Any:
        value = json.loads(path.read_text(encoding="utf-8"))
        return tuple(value) if type_name == "tuple" else value


class NumpyMaterializer:
    name, version, kind = "numpy", 1, "file"

    def handles(self, obj: object) -> bool:
        return (
            _module_of(obj) == "numpy"
            and type(obj).__name__ == "ndarray"
            and (
                getattr(obj, "dtype", None) is not None and obj.dtype.kind != "O"  # type: ignore[attr-defined]
            )
        )

    def save(self, obj: Any, path: Path) -> None:
        import numpy as np

        with open(path, "wb") as file:
            np.save(file, obj, allow_pickle=False)

    def load(self, path: Path, type_name: str) -> Any:
        import numpy as np

        return np.load(path, allow_pickle=False)


class PandasMaterializer:
    name, version, kind = "pandas", 1, "file"

    def handles(self, obj: object) -> bool:
        return _module_of(obj) == "pandas" and type(obj).__name__ in ("DataFrame", "Series")

    def save(self, obj: Any, path: Path) -> None:
        frame = obj.to_frame() if type(obj).__name__ == "Series" else obj
        frame.to_parquet(path, engine="pyarrow")

    def load(self, path: Path, type_name: str) -> Any:
        import pandas as pd

        frame = pd.read_parquet(path, engine="pyarrow")
        if type_name == "pandas.Series":
            return frame.iloc[:, 0]
        return frame


class ArrowMaterializer:
    name, version, kind = "arrow", 1, "file"

    def handles(self, obj: object) -> bool:
        return _module_of(obj) == "pyarrow" and type(obj).__name__ == "Table"

    def save(self, obj: Any, path: Path) -> None:
        import pyarrow.parquet as pq

        pq.write_table(obj, path)

    def load(self, path: Path, type_name: str) -> Any:
        import pyarrow.parquet as pq

        return pq.read_table(path)


class ModelMaterializer:
    """Models go through their flavor (skops for scikit-learn, ONNX, …): no pickle."""

    name, version, kind = "model", 1, "dir"

    def handles(self, obj: object) -> bool:
        if _module_of(obj) in ("builtins", "numpy", "pandas", "pyarrow"):
            return False
        if not callable(getattr(obj, "predict", None)):
            return False
        from shipyard.models.flavors import flavor_for

        try:
            flavor_for(obj)
        except InvalidArgumentError:
            return False
        return True

    def save(self, obj: Any, path: Path) -> None:
        from shipyard.models.flavors import flavor_for

        flavor = flavor_for(obj)
        path.mkdir()
        options = flavor.save(obj, path)
        document = {"flavor": flavor.name, "options": options}
        (path / "shipyard-step-model.json").write_text(json.dumps(document, sort_keys=True))

    def load(self, path: Path, type_name: str) -> Any:
        from shipyard.models.flavors import get_flavor

        document = json.loads((path / "shipyard-step-model.json").read_text())
        flavor = get_flavor(document["flavor"])
        return flavor.load(path, document["options"], trusted_code=False)


class PickleMaterializer:
    """The opt-in fallback: only for steps declared with ``allow_pickle=True``."""

    name, version, kind = "pickle", 1, "file"

    def handles(self, obj: object) -> bool:
        return True

    def save(self, obj: Any, path: Path) -> None:
        import pickle

        with open(path, "wb") as file:
            pickle.dump(obj, file, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, path: Path, type_name: str) -> Any:
        import pickle

        # The file's digest was verified and the step opted in to pickle.
        with open(path, "rb") as file:
            return pickle.load(file)  # noqa: S301


_BUILTINS: tuple[Materializer, ...] = (
    JsonMaterializer(),
    NumpyMaterializer(),
    PandasMaterializer(),
    ArrowMaterializer(),
    ModelMaterializer(),
)
_PICKLE = PickleMaterializer()
_plugins: list[Materializer] | None = None


def _plugin_materializers() -> list[Materializer]:
    global _plugins
    if _plugins is None:
        from importlib.metadata import entry_points  # slow to import: only when used

        loaded: list[Materializer] = []
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            obj = ep.load()
            loaded.append(obj() if isinstance(obj, type) else obj)
        _plugins = loaded
    return _plugins


def materializer_versions() -> str:
    """The built-ins' names and versions, one string: part of every cache key."""
    return ",".join(f"{m.name}/{m.version}" for m in (*_BUILTINS, _PICKLE))


def type_name(obj: object) -> str:
    kind = type(obj)
    module = kind.__module__.split(".")[0]
    return kind.__name__ if module == "builtins" else f"{module}.{kind.__name__}"


def choose(obj: object, *, step: str, output: str, allow_pickle: bool) -> Materializer:
    """The materializer for ``obj``: plugins first, then the built-ins, pickle if allowed.

    Raises:
        InvalidArgumentError: nothing but pickle can store ``obj`` and the step did not opt in.
    """
    for materializer in (*_plugin_materializers(), *_BUILTINS):
        if materializer.handles(obj):
            return materializer
    if allow_pickle:
        return _PICKLE
    raise InvalidArgumentError(
        f"step {step!r} output {output!r}: no materializer stores a value of type "
        f"{type_name(obj)} without pickle; return a JSON value, numpy array, DataFrame, "
        "Arrow table or model, or declare the step with @step(allow_pickle=True) "
        "(a pickle runs code when it is loaded)"
    )


def get_materializer(label: str) -> Materializer:
    """The materializer named by a stored label such as ``pandas/1``."""
    name, _, version = label.partition("/")
    for materializer in (*_plugin_materializers(), *_BUILTINS, _PICKLE):
        if materializer.name == name and str(materializer.version) == version:
            return materializer
    raise InvalidArgumentError(
        f"no materializer {label!r} is installed to read this output; re-run the step"
    )
