"""Find a pipeline by ``file.py:name`` or ``package.module:name``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

from shipyard.errors import InvalidArgumentError
from shipyard.pipelines.dsl import Pipeline

__all__ = ["load_pipeline"]


def _import_file(path: Path) -> ModuleType:
    folder = str(path.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)  # the file's own imports of its neighbours work as in python
    # Always executed afresh: the file may have changed since it was last imported here.
    name = path.stem if path.stem.isidentifier() else "shipyard_pipeline"
    existing = sys.modules.get(name)
    if existing is not None and not _same_file(existing, path):
        name = f"shipyard_pipeline_{path.stem}_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise InvalidArgumentError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        # Compiled from the source every time: a cached .pyc is trusted by its mtime in
        # whole seconds, and an edit within the same second would run the old code.
        code = compile(path.read_bytes(), str(path), "exec")
        exec(code, module.__dict__)  # noqa: S102 - the user's own pipeline file
    except Exception as exc:
        del sys.modules[name]
        where = traceback.extract_tb(exc.__traceback__)[-1]
        raise InvalidArgumentError(
            f"pipeline file {path} does not import: {type(exc).__name__}: {exc} "
            f"(line {where.lineno} of {Path(where.filename).name})"
        ) from exc
    return module


def _same_file(module: ModuleType, path: Path) -> bool:
    file: str | None = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve() == path


def load_pipeline(target: str) -> tuple[Pipeline, str]:
    """The pipeline named by ``target`` and a normalised source string for the record.

    ``file.py`` alone works when the file defines exactly one pipeline.

    Raises:
        InvalidArgumentError: the file or module does not exist or import, or holds no such
            pipeline.
    """
    location, sep, name = target.rpartition(":")
    if not sep:
        location, name = target, ""
    if location.endswith(".py") or "/" in location:
        path = Path(location).resolve()
        if not path.is_file():
            raise InvalidArgumentError(f"no pipeline file {location}")
        module = _import_file(path)
        shown = str(path)
    else:
        try:
            module = importlib.import_module(location)
        except ImportError as exc:
            raise InvalidArgumentError(f"cannot import module {location!r}: {exc}") from exc
        shown = location
    found = {k: v for k, v in vars(module).items() if isinstance(v, Pipeline)}
    if not name:
        if len(found) != 1:
            choices = ", ".join(sorted(found)) or "none"
            raise InvalidArgumentError(
                f"name the pipeline: {location}:NAME (pipelines in the file: {choices})"
            )
        name = next(iter(found))
    chosen = getattr(module, name, None)
    if not isinstance(chosen, Pipeline):
        choices = ", ".join(sorted(found)) or "none"
        raise InvalidArgumentError(
            f"{location} has no pipeline {name!r} (decorate it with @shipyard.pipeline); "
            f"pipelines there: {choices}"
        )
    return chosen, f"{shown}:{name}"
