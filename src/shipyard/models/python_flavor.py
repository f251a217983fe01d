"""The python flavor: a model written as a :class:`PythonModel` subclass.

What is saved is the class's import path (``package.module:ClassName``) and, optionally, an
artifacts folder; no instance is pickled. Loading imports the class, builds it with no
arguments and calls :meth:`PythonModel.load_context` with the artifacts folder.

Importing a module runs its code, so a model only names a class; it never carries the code.
The class must be importable where the model is loaded (an installed package), and loading
imports its module only when the caller passed ``trusted_code=True`` or the module is already
imported (then nothing new runs).
"""

from __future__ import annotations

import importlib
import re
import sys
from abc import ABC, abstractmethod
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

from shipyard.artifacts import resolve_inside
from shipyard.errors import InvalidArgumentError, UntrustedModelError
from shipyard.models.flavors import Predictor

__all__ = ["ARTIFACTS_DIR", "PythonFlavor", "PythonModel"]

ARTIFACTS_DIR = "artifacts"

_MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class PythonModel(ABC):
    """Subclass this to package any Python prediction code as a model.

    The subclass must live in an importable module (not ``__main__``, not inside a function)
    and be constructible with no arguments: everything it learned goes in the artifacts folder
    given to ``save_model(..., artifacts=...)`` and is read back in :meth:`load_context`.

    Example:
        >>> class Threshold(PythonModel):  # doctest: +SKIP
        ...     def load_context(self, path):
        ...         self.cut = float((path / "cut.txt").read_text())
        ...
        ...     def predict(self, data):
        ...         return (data["score"] > self.cut).astype(int)
        >>> save_model(Threshold(), "out/t", artifacts="cut/", input_example=df)  # doctest: +SKIP
    """

    def load_context(self, path: Path) -> None:  # noqa: B027 - optional hook, empty by design
        """Read what :meth:`predict` needs from ``path``, the model's artifacts folder.

        ``path`` may not exist when the model was saved without artifacts.
        """

    @abstractmethod
    def predict(self, data: Any) -> Any:
        """Predict for ``data``, already checked against the model's signature."""


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _resolve(module_name: str, qualname: str) -> Any:
    obj: Any = sys.modules[module_name]
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


class PythonFlavor:
    """Saves :class:`PythonModel` subclasses by import path, with an artifacts folder."""

    name = "python"

    def can_save(self, model: object) -> bool:
        return isinstance(model, PythonModel)

    def save(self, model: object, path: Path) -> dict[str, Any]:
        """Record the class of ``model``.

        Raises:
            InvalidArgumentError: the model is not a PythonModel, or its class cannot be
                imported by name (defined in ``__main__`` or inside a function).
        """
        if not isinstance(model, PythonModel):
            raise InvalidArgumentError(
                f"the python flavor saves PythonModel subclasses, not {type(model).__name__}"
            )
        cls = type(model)
        if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
            raise InvalidArgumentError(
                f"{cls.__qualname__} is defined in {cls.__module__!r}"
                f"{' inside a function' if '<locals>' in cls.__qualname__ else ''}; "
                "move it to an importable module so that it can be found again at load time"
            )
        try:
            found = _resolve(cls.__module__, cls.__qualname__)
        except (KeyError, AttributeError):
            found = None
        if found is not cls:
            raise InvalidArgumentError(f"{_class_path(cls)} does not name the model's class")
        return {"class": _class_path(cls), "artifacts": ARTIFACTS_DIR}

    def requirements(self, model: object) -> list[str]:
        """The distribution that provides the model's module, when it is an installed one."""
        top = type(model).__module__.split(".", 1)[0]
        return sorted(set(packages_distributions().get(top, [])))

    def load(self, path: Path, options: dict[str, Any], *, trusted_code: bool) -> Predictor:
        """Import the class (see the module docstring for when), build it, load its context.

        Raises:
            UntrustedModelError: the module is not imported yet and ``trusted_code`` is false,
                or the name does not lead to a PythonModel subclass.
            InvalidArgumentError: the module cannot be imported.
        """
        target = str(options.get("class", ""))
        module_name, _, qualname = target.partition(":")
        if not _MODULE_RE.fullmatch(module_name) or not _MODULE_RE.fullmatch(qualname):
            raise UntrustedModelError(f"the model names an invalid class {target!r}")
        if module_name not in sys.modules:
            if not trusted_code:
                raise UntrustedModelError(
                    f"loading this model imports {module_name!r}, which runs that module's "
                    "code; pass trusted_code=True if you trust it, or import it first"
                )
            try:
                importlib.import_module(module_name)
            except ImportError as exc:
                raise InvalidArgumentError(
                    f"the model's class {target} cannot be imported: {exc}; install the "
                    "package that provides it"
                ) from exc
        try:
            cls = _resolve(module_name, qualname)
        except AttributeError as exc:
            raise InvalidArgumentError(f"the model's class {target} does not exist") from exc
        if not (isinstance(cls, type) and issubclass(cls, PythonModel)):
            raise UntrustedModelError(f"{target} is not a shipyard.models.PythonModel subclass")
        instance = cls()
        instance.load_context(resolve_inside(path, str(options.get("artifacts", ARTIFACTS_DIR))))
        return instance
