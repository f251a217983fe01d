"""The PyTorch flavor: a CPU ``torch.nn.Module`` saved as a ``torch.export`` program (``.pt2``).

``torch.export`` records the module's forward pass as a graph of ATen operators (JSON) with its
weights as raw bytes, so loading needs neither the module's Python class nor pickle. TorchScript
is deprecated in PyTorch 2.13 and is not used.

``torch.export.load`` alone is not safe on a file from anywhere: it resolves any ``torch.*``
name a node targets, reads symbolic shapes with sympy (which evaluates text) and falls back to
full unpickling for pickled tensors. So before it runs, :func:`check_archive` reads the archive
itself and refuses it unless every node targets an ATen or prims operator, every shape
expression is plain symbols and integers, nothing runs as guard code, no weight or constant is
pickled, and the pickled example inputs only rebuild tensors. ``save`` applies the same check,
so a model that would not load is refused when it is saved.
"""

from __future__ import annotations

import io
import json
import re
import sys
import zipfile
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from shipyard.artifacts import resolve_inside
from shipyard.errors import InvalidArgumentError, UntrustedModelError
from shipyard.models.flavors import Predictor
from shipyard.models.scan import scan_pickle_bytes

__all__ = ["TorchFlavor", "TorchModel", "check_archive"]

_FILE = "model.pt2"
_INSTALL_HINT = "the torch flavor needs PyTorch: pip install 'shipyard-mlops[torch]'"

_TARGET_PREFIXES = ("torch.ops.aten.", "torch.ops.prims.", "_operator.getitem")
_EXPR = re.compile(
    r"(?:\s+|[(),=]|-?\d+|'[a-z]+\d+'"
    r"|Symbol|Integer|Add|Mul|Mod|FloorDiv|CleanDiv|Max|Min"
    r"|positive|integer|nonnegative|real|finite|True|False)*"
)
_SYMBOL = re.compile(r"[a-z]+\d+")
_TENSOR_GLOBALS = frozenset(
    {
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "collections.OrderedDict",
        "builtins.tuple",
        "builtins.list",
        "builtins.dict",
    }
)


def _installed(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return ""


def _require_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise InvalidArgumentError(_INSTALL_HINT) from exc
    return torch


def _walk(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """Every ``(key, value)`` pair in a JSON document, depth first."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from _walk(v, k)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, key)


def _check_graph(name: str, document: Any) -> None:
    if document.get("guards_code"):
        raise UntrustedModelError(f"{name} holds guard code, which would run when loaded")
    for symbol in document.get("range_constraints", {}):
        if not _SYMBOL.fullmatch(symbol):
            raise UntrustedModelError(f"{name} holds an unexpected shape symbol {symbol!r}")
    for key, value in _walk(document):
        if key in ("target", "as_operator") and isinstance(value, str):
            if not value.startswith(_TARGET_PREFIXES):
                raise UntrustedModelError(
                    f"{name} calls {value!r}; only ATen and prims operators are loaded"
                )
        elif key == "expr_str" and isinstance(value, str) and not _EXPR.fullmatch(value):
            raise UntrustedModelError(f"{name} holds an unexpected shape expression {value!r}")


def _check_pickle(name: str, data: bytes) -> None:
    if data[:2] == b"PK":  # a torch.save archive: check the pickles inside it
        with zipfile.ZipFile(io.BytesIO(data)) as inner:
            for member in inner.namelist():
                if member.endswith(".pkl"):
                    _check_pickle(f"{name}:{member}", inner.read(member))
        return
    finding = scan_pickle_bytes(data, name)
    other = sorted(
        imp.qualified_name
        for imp in finding.imports
        if imp.qualified_name not in _TENSOR_GLOBALS
        and not (imp.module == "torch" and imp.name.endswith("Storage"))
    )
    if finding.error or other:
        raise UntrustedModelError(
            f"{name} is a pickle that does more than rebuild tensors: "
            f"{', '.join(other) or finding.error}"
        )


def check_archive(file: Path) -> None:
    """Refuse a ``.pt2`` archive that ``torch.export.load`` could not read safely.

    Raises:
        UntrustedModelError: naming the member and what in it is refused.
    """
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UntrustedModelError(f"{file.name} is not a torch.export archive: {exc}") from exc
    with archive:
        for member in archive.namelist():
            parts = member.split("/")
            data = archive.read(member)
            if "models" in parts and member.endswith(".json"):
                _check_graph(member, json.loads(data))
            elif member.endswith("_config.json"):
                for key, entry in json.loads(data).get("config", {}).items():
                    if entry.get("use_pickle") or "custom_obj" in json.dumps(entry):
                        raise UntrustedModelError(
                            f"{member}: {key!r} is stored as a pickle or custom object"
                        )
            elif "custom_objects" in parts:
                raise UntrustedModelError(f"{member} is a custom object, stored as a pickle")
            elif "sample_inputs" in parts or data[:1] == b"\x80":
                _check_pickle(member, data)


class TorchModel:
    """An exported module behind ``predict``: input as a float tensor, output as numpy."""

    def __init__(self, module: Any, dtype: str = "float32") -> None:
        self.module = module
        self.dtype = dtype

    def predict(self, data: Any) -> Any:
        """The module's output for ``data`` (a DataFrame, an array), as a numpy array.

        A module returning several tensors gives the first.
        """
        import numpy as np
        import pandas as pd
        import torch

        if isinstance(data, pd.DataFrame | pd.Series):
            data = data.to_numpy()
        # A copy: pandas 3 hands out read-only arrays, which torch warns about sharing.
        tensor = torch.from_numpy(np.array(data, dtype=self.dtype))
        with torch.no_grad():
            output = self.module(tensor)
        if isinstance(output, tuple | list):
            output = output[0]
        return output.detach().cpu().numpy()


def _example_for(torch: Any, module: Any) -> Any:
    """A small batch the module takes: its first layer's ``in_features`` wide."""
    for layer in module.modules():
        width = getattr(layer, "in_features", None)
        if isinstance(width, int):
            dtype = next((p.dtype for p in module.parameters()), torch.float32)
            return torch.zeros(3, width, dtype=dtype)
    raise InvalidArgumentError(
        f"cannot tell what input a {type(module).__name__} takes (no layer has in_features); "
        "export it yourself and save the program: torch.export.export(module, (example,), "
        "dynamic_shapes=({0: torch.export.Dim('batch')},))"
    )


class TorchFlavor:
    """Saves ``torch.nn.Module`` (and ``torch.export`` programs) as ``model.pt2``."""

    name = "torch"

    def can_save(self, model: object) -> bool:
        """Whether ``model`` is a ``torch.nn.Module`` or an ``ExportedProgram``."""
        if "torch" not in sys.modules:
            return False
        import torch

        return isinstance(model, torch.nn.Module | torch.export.ExportedProgram)

    def save(self, model: object, path: Path) -> dict[str, Any]:
        """Export ``model`` with a dynamic batch dimension and write ``path/model.pt2``.

        A module is exported in eval mode on a zero batch as wide as its first layer's
        ``in_features``; other modules must be exported by the caller.

        Raises:
            InvalidArgumentError: the module cannot be exported.
            UntrustedModelError: the program holds parts :func:`check_archive` refuses.
        """
        torch = _require_torch()
        if isinstance(model, torch.export.ExportedProgram):
            program = model
        elif isinstance(model, torch.nn.Module):
            example = _example_for(torch, model)
            was_training = model.training
            model.eval()
            try:
                program = torch.export.export(
                    model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)
                )
            except Exception as exc:
                raise InvalidArgumentError(
                    f"torch.export could not export the model: {exc}"
                ) from exc
            finally:
                model.train(was_training)
        else:
            raise InvalidArgumentError(f"the torch flavor cannot save a {type(model).__name__}")
        inputs = list(program.graph_signature.user_inputs)
        dtype = "float32"
        placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
        if inputs and inputs[0] in placeholders:
            value = placeholders[inputs[0]].meta.get("val")
            if value is not None:
                dtype = str(value.dtype).removeprefix("torch.")
        file = path / _FILE
        torch.export.save(program, file)
        check_archive(file)
        return {"file": _FILE, "input_dtype": dtype, "torch_version": _installed("torch")}

    def requirements(self, model: object) -> list[str]:
        return ["torch", "numpy"]

    def load(self, path: Path, options: dict[str, Any], *, trusted_code: bool) -> Predictor:
        """Check the archive (:func:`check_archive`), then load it with ``torch.export.load``.

        ``torch.export.load`` can fall back to unpickling and can load compiled native code
        from the archive, and the archive check is a guard, not a proof; so a PyTorch model
        loads only with ``trusted_code=True`` (load models you or your team produced).

        Raises:
            UntrustedModelError: ``trusted_code`` is false, or the archive holds anything the
                check refuses.
        """
        if not trusted_code:
            raise UntrustedModelError(
                "a PyTorch program can run code when it is loaded; load it with "
                "trusted_code=True (`--trusted-code`) if you trust where it came from"
            )
        torch = _require_torch()
        file = resolve_inside(path, str(options.get("file", _FILE)))
        check_archive(file)
        program = torch.export.load(file)
        dtype = str(options.get("input_dtype", "float32"))
        if not re.fullmatch(r"float(16|32|64)|int(8|16|32|64)|uint8|bool", dtype):
            raise UntrustedModelError(f"the model names an unknown input dtype {dtype!r}")
        return TorchModel(program.module(), dtype)
