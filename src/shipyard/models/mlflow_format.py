"""Model folders written by MLflow (an ``MLmodel`` file instead of ``shipyard-model.json``).

Shipyard loads the ones it can load safely: scikit-learn models MLflow saved with skops
(``serialization_format="skops"``, MLflow's default outside Databricks), through the same
``sklearn`` flavor and skops allow-list as its own. A pickled MLflow model is refused with
the way out; other flavors are named and left to ``mlflow.pyfunc``. The column signature is
read from MLflow's, so serving and batch scoring check inputs as for any Shipyard model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shipyard.entities.models import ColumnSpec, ModelMeta, ModelSignature
from shipyard.errors import InvalidArgumentError, NotFoundError, UntrustedModelError

__all__ = ["MLMODEL_FILE", "read_mlflow_meta"]

MLMODEL_FILE = "MLmodel"

# MLflow's column types -> numpy dtype names (docs: mlflow.types.DataType).
_TYPES = {
    "double": "float64",
    "float": "float32",
    "long": "int64",
    "integer": "int32",
    "boolean": "bool",
    "string": "string",
    "binary": "object",
    "datetime": "datetime64[ns]",
}


def read_mlflow_meta(root: Path) -> ModelMeta:
    """What Shipyard needs from an MLflow model folder's ``MLmodel`` file.

    Raises:
        UntrustedModelError: a scikit-learn model saved as a pickle.
        NotFoundError: a flavor Shipyard does not load (use ``mlflow.pyfunc``).
        InvalidArgumentError: the ``MLmodel`` file cannot be read.
    """
    import yaml

    file = root / MLMODEL_FILE
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidArgumentError(f"{file} cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArgumentError(f"{file} is not an MLmodel file")
    flavors: dict[str, Any] = data.get("flavors") or {}
    sklearn = flavors.get("sklearn")
    if not isinstance(sklearn, dict):
        raise NotFoundError(
            f"{root} is an MLflow model with flavors {sorted(flavors)}: Shipyard loads MLflow's "
            "scikit-learn models saved with skops; load this one with mlflow.pyfunc.load_model"
        )
    serialization = sklearn.get("serialization_format", "cloudpickle")
    if serialization != "skops":
        raise UntrustedModelError(
            f"{root} holds a scikit-learn model MLflow saved with {serialization}, which runs "
            "code when loaded: log it with mlflow.sklearn.log_model(..., "
            "serialization_format='skops') to have Shipyard load it"
        )
    python = (flavors.get("python_function") or {}).get("python_version", "")
    return ModelMeta(
        flavor="sklearn",
        model_type="sklearn (saved by MLflow)",
        signature=_signature(data.get("signature")),
        requirements=_requirements(root / "requirements.txt"),
        python_version=str(python),
        files=(),  # the registry verified the folder against its manifest digest
        created_at=0,
        flavor_options={"file": str(sklearn.get("pickled_model", "model.skops"))},
        shipyard_version="",
    )


def _signature(data: Any) -> ModelSignature | None:
    if not isinstance(data, dict) or not data.get("inputs"):
        return None
    try:
        inputs = json.loads(data["inputs"])
        outputs = json.loads(data["outputs"]) if data.get("outputs") else []
    except (TypeError, ValueError):
        return None
    if not all(isinstance(c, dict) and c.get("name") for c in inputs):
        return None  # a tensor signature: left unchecked

    def column(spec: dict[str, Any], default: str) -> ColumnSpec:
        kind = _TYPES.get(str(spec.get("type")), "object")
        return ColumnSpec(str(spec.get("name", default)), kind)

    return ModelSignature(
        tuple(column(c, "") for c in inputs),
        tuple(column(c, f"output_{i}") for i, c in enumerate(outputs)),
    )


def _requirements(file: Path) -> tuple[str, ...]:
    if not file.is_file():
        return ()
    lines = (line.strip() for line in file.read_text(encoding="utf-8").splitlines())
    return tuple(
        line for line in lines if line and not line.startswith(("#", "-")) and "mlflow" not in line
    )
