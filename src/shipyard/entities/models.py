"""The nouns of model packaging: signatures, the metadata of a saved model, pickle findings.

All of them survive a JSON round trip (``to_dict`` / ``from_dict``) because they are written
into ``shipyard-model.json`` beside the model's files and read back by whoever loads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shipyard.entities.data import Severity

__all__ = [
    "MODEL_META_FORMAT",
    "ColumnSpec",
    "ModelFile",
    "ModelMeta",
    "ModelSignature",
    "PickleFinding",
    "PickleImport",
]

MODEL_META_FORMAT = "shipyard.model/1"


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One named column of a table, or one tensor when ``shape`` is set.

    ``type`` is a numpy dtype name (``float64``, ``int64``, ``bool``, ``datetime64[ns]``) or one
    of ``string``, ``category``, ``object``. In ``shape``, ``-1`` is the batch dimension.
    """

    name: str
    type: str
    shape: tuple[int, ...] | None = None

    @property
    def is_tensor(self) -> bool:
        return self.shape is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "shape": list(self.shape) if self.shape is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnSpec:
        shape = data.get("shape")
        return cls(
            name=str(data["name"]),
            type=str(data["type"]),
            shape=tuple(int(n) for n in shape) if shape is not None else None,
        )


@dataclass(frozen=True, slots=True)
class ModelSignature:
    """What a model takes and gives: named columns, or a single tensor, each way."""

    inputs: tuple[ColumnSpec, ...]
    outputs: tuple[ColumnSpec, ...] = ()

    @property
    def is_tensor(self) -> bool:
        """Whether the input is one tensor (an array) rather than named columns."""
        return len(self.inputs) == 1 and self.inputs[0].is_tensor

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [spec.to_dict() for spec in self.inputs],
            "outputs": [spec.to_dict() for spec in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSignature:
        return cls(
            inputs=tuple(ColumnSpec.from_dict(d) for d in data.get("inputs", ())),
            outputs=tuple(ColumnSpec.from_dict(d) for d in data.get("outputs", ())),
        )


@dataclass(frozen=True, slots=True)
class ModelFile:
    """A file of a saved model: its path inside the model folder and its BLAKE3 digest."""

    path: str
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class ModelMeta:
    """What ``shipyard-model.json`` says about a saved model.

    ``requirements`` are pinned distributions (``scikit-learn==1.5.2``) the model needs to
    load; ``flavor_options`` is what the flavor recorded for itself (its file name, versions).
    ``input_example`` names the file holding the model's input example, when it was saved with
    one (folders written before it was kept have none).
    """

    flavor: str
    model_type: str
    """Import path of the model's class, for people (``sklearn.linear_model...``)."""
    signature: ModelSignature | None
    requirements: tuple[str, ...]
    python_version: str
    files: tuple[ModelFile, ...]
    created_at: int
    """Milliseconds since the Unix epoch."""
    flavor_options: dict[str, Any] = field(default_factory=dict)
    shipyard_version: str = ""
    input_example: str | None = None
    format: str = MODEL_META_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "flavor": self.flavor,
            "model_type": self.model_type,
            "signature": self.signature.to_dict() if self.signature is not None else None,
            "requirements": list(self.requirements),
            "python_version": self.python_version,
            "files": [{"path": f.path, "digest": f.digest, "size": f.size} for f in self.files],
            "created_at": self.created_at,
            "flavor_options": dict(self.flavor_options),
            "shipyard_version": self.shipyard_version,
            "input_example": self.input_example,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMeta:
        """Build from a parsed ``shipyard-model.json``.

        Raises:
            KeyError: if a required key is missing.
            ValueError: if the format is not one this version reads.
        """
        fmt = str(data.get("format", ""))
        if fmt != MODEL_META_FORMAT:
            raise ValueError(f"unknown model format {fmt!r} (expected {MODEL_META_FORMAT!r})")
        signature = data.get("signature")
        example = data.get("input_example")
        return cls(
            flavor=str(data["flavor"]),
            model_type=str(data.get("model_type", "")),
            signature=ModelSignature.from_dict(signature) if signature is not None else None,
            requirements=tuple(str(r) for r in data.get("requirements", ())),
            python_version=str(data.get("python_version", "")),
            files=tuple(
                ModelFile(path=str(f["path"]), digest=str(f["digest"]), size=int(f["size"]))
                for f in data.get("files", ())
            ),
            created_at=int(data.get("created_at", 0)),
            flavor_options=dict(data.get("flavor_options") or {}),
            shipyard_version=str(data.get("shipyard_version", "")),
            input_example=str(example) if example is not None else None,
            format=fmt,
        )


@dataclass(frozen=True, slots=True)
class PickleImport:
    """One global a pickle would import when loaded (``module.name``), and how dangerous it is.

    ``severity`` is ``ERROR`` for what can run commands, open files or sockets or evaluate code,
    ``WARNING`` for anything not known to be harmless, ``INFO`` for known-harmless types.
    """

    module: str
    name: str
    severity: Severity
    reason: str = ""

    @property
    def qualified_name(self) -> str:
        return f"{self.module}.{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "name": self.name,
            "severity": self.severity.value,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class PickleFinding:
    """What a scan found in one pickle-like file, without ever unpickling it.

    ``error`` is set when the stream could not be read to the end (truncated, or a format
    such as joblib that appends raw array bytes); ``imports`` then holds what was read before.
    """

    path: str
    imports: tuple[PickleImport, ...]
    error: str | None = None

    @property
    def severity(self) -> Severity:
        """The worst severity among the imports; ``WARNING`` at least when unreadable."""
        levels = [imp.severity for imp in self.imports]
        if self.error is not None:
            levels.append(Severity.WARNING)
        if Severity.ERROR in levels:
            return Severity.ERROR
        if Severity.WARNING in levels:
            return Severity.WARNING
        return Severity.INFO

    @property
    def unsafe(self) -> tuple[PickleImport, ...]:
        """The imports that are not known to be harmless."""
        return tuple(imp for imp in self.imports if imp.severity is not Severity.INFO)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "severity": self.severity.value,
            "imports": [imp.to_dict() for imp in self.imports],
            "error": self.error,
        }
