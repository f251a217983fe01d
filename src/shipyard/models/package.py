"""Model folders: ``save_model`` writes one, ``load_model`` reads it back behind one ``predict``.

A model folder holds the flavor's own files, an optional ``artifacts/`` folder, the input
example it was saved with (``input_example.json``, see :mod:`shipyard.models.example`) and
``shipyard-model.json`` (:class:`~shipyard.entities.models.ModelMeta`): flavor, signature,
pinned requirements, Python version and the BLAKE3 digest of every file.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.artifacts import hash_file, resolve_inside
from shipyard.entities.models import ModelFile, ModelMeta, ModelSignature
from shipyard.errors import (
    AlreadyExistsError,
    ArtifactCorruptedError,
    InvalidArgumentError,
    NotFoundError,
)
from shipyard.models.example import read_input_example, write_input_example
from shipyard.models.flavors import Predictor, flavor_for, get_flavor
from shipyard.models.python_flavor import ARTIFACTS_DIR
from shipyard.models.signature import enforce_signature, infer_signature
from shipyard.models.trust import refuse_pickles

if TYPE_CHECKING:
    from shipyard.models.example import InputExample

__all__ = [
    "META_FILE",
    "LoadedModel",
    "load_input_example",
    "load_model",
    "read_meta",
    "save_model",
]

META_FILE = "shipyard-model.json"

_SHIPYARD_DISTRIBUTION = "shipyard-mlops"


def _installed(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _requirement_name(requirement: str) -> str:
    for sep in ("==", ">=", "<=", "~=", "!=", ">", "<", "[", ";", " "):
        requirement = requirement.split(sep, 1)[0]
    return requirement.strip().lower().replace("_", "-")


def _pinned(names: list[str], extra: list[str]) -> tuple[str, ...]:
    """``names`` pinned to their installed versions, then ``extra`` as given (which wins)."""
    given = {_requirement_name(r): r for r in extra}
    pinned: dict[str, str] = {}
    for name in [_SHIPYARD_DISTRIBUTION, *names]:
        key = _requirement_name(name)
        installed = _installed(name)
        pinned[key] = f"{name}=={installed}" if installed else name
    pinned.update(given)
    return tuple(pinned.values())


def _file_entries(root: Path) -> tuple[ModelFile, ...]:
    entries = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if rel != META_FILE:
                entries.append(ModelFile(rel, hash_file(full), full.stat().st_size))
    return tuple(sorted(entries, key=lambda f: f.path))


def save_model(
    model: object,
    path: str | os.PathLike[str],
    *,
    input_example: Any = None,
    flavor: str | None = None,
    requirements: list[str] | None = None,
    artifacts: str | os.PathLike[str] | None = None,
) -> ModelMeta:
    """Write ``model`` into the new folder ``path`` with its flavor's files and metadata.

    Args:
        model: a fitted scikit-learn estimator, a :class:`~shipyard.models.PythonModel`, or
            anything an installed flavor plugin handles.
        path: a folder that does not exist yet (or is empty).
        input_example: a few rows of input: a DataFrame gives a signature of named columns, an
            array a tensor. The outputs are inferred by loading the saved model back and
            calling ``predict`` on it. Its first 100 rows (fewer when a row holds more than
            1,000 values) are kept in ``input_example.json`` (read back with
            :func:`load_input_example`). Without it the model has no signature and its input
            is not checked.
        flavor: a flavor name (``"sklearn"``, ``"python"``); chosen from the model by default.
        requirements: extra requirements, as pip reads them; they win over inferred pins.
        artifacts: a file or folder copied into ``artifacts/`` (what a PythonModel's
            ``load_context`` reads).

    Returns:
        The metadata written to ``shipyard-model.json``.

    Raises:
        AlreadyExistsError: ``path`` exists and is not an empty folder.
        InvalidArgumentError: no flavor handles the model, the model is unfitted, or calling
            ``predict`` on the example failed. Nothing is left behind.
        UntrustedModelError: the model holds parts Shipyard would refuse to load.

    Example:
        >>> meta = save_model(clf, "out/clf", input_example=X_train.head())  # doctest: +SKIP
        >>> load_model("out/clf").predict(X_test)  # doctest: +SKIP
    """
    root = Path(path)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise AlreadyExistsError(f"{root} already exists; save a model into a new folder")
    chosen = get_flavor(flavor) if flavor is not None else flavor_for(model)
    if flavor is not None and not chosen.can_save(model):
        raise InvalidArgumentError(
            f"the {flavor} flavor cannot save a {type(model).__module__}.{type(model).__name__}"
        )
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        options = chosen.save(model, root)
        if artifacts is not None:
            source = Path(artifacts)
            target = root / ARTIFACTS_DIR
            if source.is_dir():
                shutil.copytree(source, target, symlinks=False)
            elif source.is_file():
                target.mkdir()
                shutil.copy2(source, target / source.name)
            else:
                raise NotFoundError(f"artifacts {source} do not exist")
        signature = None
        example_file = None
        if input_example is not None:
            # The outputs come from the model as saved, so the example also proves that it
            # loads again (and a PythonModel gets its context before predicting). These files
            # were written a moment ago from the object in memory: trusting them adds nothing.
            reloaded = chosen.load(root, options, trusted_code=True)
            try:
                output = reloaded.predict(input_example)
            except Exception as exc:
                raise InvalidArgumentError(
                    f"calling predict on the input example failed: {type(exc).__name__}: {exc}"
                ) from exc
            signature = infer_signature(input_example, output)
            example_file = write_input_example(input_example, root)
        meta = ModelMeta(
            flavor=chosen.name,
            model_type=f"{type(model).__module__}.{type(model).__qualname__}",
            signature=signature,
            requirements=_pinned(chosen.requirements(model), list(requirements or [])),
            python_version=platform.python_version(),
            files=_file_entries(root),
            created_at=int(time.time() * 1000),
            flavor_options=options,
            shipyard_version=_installed(_SHIPYARD_DISTRIBUTION) or "",
            input_example=example_file,
        )
        text = json.dumps(meta.to_dict(), indent=2, sort_keys=True) + "\n"
        (root / META_FILE).write_text(text, encoding="utf-8")
    except BaseException:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        else:
            for child in root.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise
    return meta


def read_meta(path: str | os.PathLike[str]) -> ModelMeta:
    """Read ``shipyard-model.json`` from the model folder ``path`` (or, for a folder MLflow
    wrote, what :mod:`shipyard.models.mlflow_format` reads from its ``MLmodel``).

    Raises:
        NotFoundError: the folder or its metadata file does not exist.
        InvalidArgumentError: the metadata cannot be read.
    """
    file = Path(path) / META_FILE
    if not file.is_file():
        from shipyard.models.mlflow_format import MLMODEL_FILE, read_mlflow_meta

        if (Path(path) / MLMODEL_FILE).is_file():
            return read_mlflow_meta(Path(path))
        raise NotFoundError(f"{path} is not a saved model: {META_FILE} not found")
    try:
        return ModelMeta.from_dict(json.loads(file.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgumentError(f"{file} cannot be read: {exc}") from exc


def load_input_example(path: str | os.PathLike[str]) -> InputExample | None:
    """The input example the model in the folder ``path`` was saved with, if it was.

    A DataFrame for an example given as a table (a DataFrame, a dict of lists, a list of
    dicts), else a numpy array; the same dtypes as the example, at most its first 100 rows,
    without its index. The model itself is not loaded.

    Returns:
        ``None`` for a model saved without an example, or before examples were kept.

    Raises:
        NotFoundError: ``path`` is not a saved model.
        ArtifactCorruptedError: the example file is missing or does not match its digest.
        InvalidArgumentError: the example file cannot be read.

    Example:
        >>> load_input_example("out/clf").dtypes  # doctest: +SKIP
    """
    root = Path(path)
    return _input_example(root, read_meta(root))


def _input_example(root: Path, meta: ModelMeta) -> InputExample | None:
    if meta.input_example is None:
        return None
    entry = next((f for f in meta.files if f.path == meta.input_example), None)
    if entry is None:
        raise ArtifactCorruptedError(
            f"{META_FILE} names the input example {meta.input_example} but lists no digest for it"
        )
    return read_input_example(_verified(root, entry))


def _verified(root: Path, entry: ModelFile) -> Path:
    file = resolve_inside(root, entry.path)
    if not file.is_file():
        raise ArtifactCorruptedError(f"model file {entry.path} is missing from {root}")
    if hash_file(file) != entry.digest:
        raise ArtifactCorruptedError(
            f"model file {entry.path} does not match its digest in {META_FILE}"
        )
    return file


def _verify_files(root: Path, meta: ModelMeta) -> None:
    for entry in meta.files:
        _verified(root, entry)


def load_model(
    path: str | os.PathLike[str],
    *,
    trusted_pickle: bool = False,
    trusted_code: bool = False,
) -> LoadedModel:
    """Load the model saved in the folder ``path``.

    Before anything is loaded, every file is checked against its digest and the folder is
    scanned for pickles (see ``docs/models.md``, "Safety").

    Args:
        path: a folder written by :func:`save_model`.
        trusted_pickle: allow pickle files in the folder. They can run any code when loaded:
            only for models whose origin you trust.
        trusted_code: allow importing the module a PythonModel's class lives in when it is
            not imported yet (importing runs that module's code).

    Raises:
        NotFoundError: ``path`` is not a saved model, or its flavor is not installed.
        ArtifactCorruptedError: a file is missing or does not match its digest.
        UntrustedModelError: a pickle without ``trusted_pickle``, a type outside the skops
            allow-list, or code to import without ``trusted_code``.
    """
    root = Path(path)
    meta = read_meta(root)
    _verify_files(root, meta)
    if not trusted_pickle:
        refuse_pickles(root)
    flavor = get_flavor(meta.flavor)
    model = flavor.load(root, dict(meta.flavor_options), trusted_code=trusted_code)
    return LoadedModel(model, meta, root)


class LoadedModel:
    """A loaded model of any flavor, with one ``predict`` that checks its input first.

    Attributes:
        model: what the flavor loaded (the scikit-learn estimator, the PythonModel instance).
        meta: the model's ``shipyard-model.json``.
        path: the folder it was loaded from.
    """

    def __init__(self, model: Predictor, meta: ModelMeta, path: Path) -> None:
        self.model = model
        self.meta = meta
        self.path = path

    def __repr__(self) -> str:
        return f"LoadedModel(flavor={self.meta.flavor!r}, model_type={self.meta.model_type!r})"

    @property
    def signature(self) -> ModelSignature | None:
        return self.meta.signature

    @property
    def input_example(self) -> InputExample | None:
        """The example the model was saved with (see :func:`load_input_example`), or ``None``.

        Read from the folder, and checked against its digest again, on every access.
        """
        return _input_example(self.path, self.meta)

    @property
    def has_predict_proba(self) -> bool:
        return callable(getattr(self.model, "predict_proba", None))

    def _prepare(self, data: Any) -> Any:
        if self.meta.signature is None:
            return data
        return enforce_signature(data, self.meta.signature)

    def _call(self, method: str, data: Any) -> Any:
        prepared = self._prepare(data)
        try:
            return getattr(self.model, method)(prepared)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise InvalidArgumentError(
                f"the model rejected the input: {type(exc).__name__}: {exc}"
            ) from exc

    def predict(self, data: Any) -> Any:
        """Predict for ``data`` (a DataFrame, an array, a dict of lists, a list of dicts).

        Raises:
            InputMismatchError: ``data`` does not match the signature (the field is named).
            InvalidArgumentError: the model itself rejected the input (e.g. missing values).
        """
        return self._call("predict", data)

    def predict_proba(self, data: Any) -> Any:
        """Class probabilities for ``data``, checked like :meth:`predict`.

        Raises:
            InvalidArgumentError: the model has no ``predict_proba`` (see
                :attr:`has_predict_proba`), or the input does not fit.
        """
        if not self.has_predict_proba:
            raise InvalidArgumentError(f"a {self.meta.model_type} model has no predict_proba")
        return self._call("predict_proba", data)

    def environment_mismatches(self) -> list[str]:
        """How this Python and its packages differ from what the model was saved with."""
        found = []
        saved = self.meta.python_version.split(".")[:2]
        here = platform.python_version().split(".")[:2]
        if saved != here:
            found.append(f"Python {'.'.join(saved)} saved the model; this is {'.'.join(here)}")
        for requirement in self.meta.requirements:
            name, sep, wanted = requirement.partition("==")
            if not sep:
                continue
            installed = _installed(name)
            if installed != wanted:
                found.append(f"{name}=={wanted} saved the model; installed: {installed or 'none'}")
        return found
