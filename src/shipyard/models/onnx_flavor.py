"""The ONNX flavor: an ``onnx.ModelProto`` (or a ``.onnx`` file) run by onnxruntime on the CPU.

An ONNX file is a protobuf graph of standard operators: data, not code. It is read into memory
and handed to onnxruntime as bytes, so tensors kept in external files (which could name any
path) are refused when saved and cannot be resolved when loaded.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from shipyard.artifacts import resolve_inside
from shipyard.errors import InputMismatchError, InvalidArgumentError
from shipyard.models.flavors import Predictor

__all__ = ["OnnxClassifier", "OnnxFlavor", "OnnxModel"]

_FILE = "model.onnx"
_INSTALL_HINT = "the onnx flavor needs onnx and onnxruntime: pip install 'shipyard-mlops[onnx]'"

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return ""


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise InvalidArgumentError(_INSTALL_HINT) from exc


def _is_onnx_path(model: object) -> bool:
    return isinstance(model, str | os.PathLike) and str(model).lower().endswith(".onnx")


class OnnxModel:
    """An onnxruntime session behind ``predict`` (and ``predict_proba`` for classifiers).

    ``predict`` returns the first output (the label for a converted classifier). A graph with
    a later output whose name says ``prob`` (as skl2onnx names them) loads as
    :class:`OnnxClassifier`, which has ``predict_proba``. A graph with several inputs takes a
    table whose columns are named after them.
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        self.inputs = list(session.get_inputs())
        self.outputs = [o.name for o in session.get_outputs()]
        self.proba_output = next(
            (name for name in self.outputs[1:] if "prob" in name.lower()), None
        )

    def _feed(self, data: Any) -> dict[str, Any]:
        import numpy as np
        import pandas as pd

        if len(self.inputs) == 1:
            spec = self.inputs[0]
            array = data.to_numpy() if isinstance(data, pd.DataFrame) else np.asarray(data)
            dtype = _ORT_TYPES.get(spec.type)
            return {spec.name: array.astype(dtype) if dtype else array}
        if not isinstance(data, pd.DataFrame):
            names = ", ".join(repr(i.name) for i in self.inputs)
            raise InputMismatchError(
                self.inputs[0].name, f"the model takes a table with the inputs {names}"
            )
        feed = {}
        for spec in self.inputs:
            if spec.name not in data.columns:
                raise InputMismatchError(spec.name, f"missing column {spec.name!r}")
            column = data[spec.name].to_numpy().reshape(-1, 1)
            dtype = _ORT_TYPES.get(spec.type)
            feed[spec.name] = column.astype(dtype) if dtype else column
        return feed

    def _run(self, output: str, data: Any) -> Any:
        return self.session.run([output], self._feed(data))[0]

    def predict(self, data: Any) -> Any:
        """The graph's first output for ``data``."""
        return self._run(self.outputs[0], data)


class OnnxClassifier(OnnxModel):
    """An ONNX model with a probabilities output, which ``predict_proba`` returns."""

    def predict_proba(self, data: Any) -> Any:
        """The graph's probabilities output for ``data``, as an ``(n, classes)`` array."""
        import numpy as np

        assert self.proba_output is not None  # noqa: S101 - built only when there is one
        result = self._run(self.proba_output, data)
        if isinstance(result, list):  # a ZipMap output: one {label: probability} per row
            labels = sorted(result[0]) if result else []
            return np.array([[row[label] for label in labels] for row in result])
        return np.asarray(result)


class OnnxFlavor:
    """Saves ONNX graphs as ``model.onnx``; loads them into an onnxruntime CPU session."""

    name = "onnx"

    def can_save(self, model: object) -> bool:
        """Whether ``model`` is an ``onnx.ModelProto`` or the path of a ``.onnx`` file."""
        cls = type(model)
        if cls.__module__.startswith("onnx") and cls.__name__ == "ModelProto":
            return True
        return _is_onnx_path(model) and Path(str(model)).is_file()

    def save(self, model: object, path: Path) -> dict[str, Any]:
        """Check the graph and write it to ``path/model.onnx``.

        Raises:
            InvalidArgumentError: the graph is invalid or keeps tensors in external files.
        """
        onnx = _require("onnx")
        _require("onnxruntime")
        if _is_onnx_path(model):
            data = Path(str(model)).read_bytes()
        elif isinstance(model, onnx.ModelProto):
            data = model.SerializeToString()
        else:
            raise InvalidArgumentError(
                f"the onnx flavor saves an onnx.ModelProto or a .onnx file, not {model!r}"
            )
        try:
            proto = onnx.load_from_string(data)
            onnx.checker.check_model(proto)
        except Exception as exc:
            raise InvalidArgumentError(f"not a valid ONNX model: {exc}") from exc
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
            raise InvalidArgumentError(
                "the ONNX model keeps tensors in external files; save it as one file "
                "(onnx.save_model(model, path, save_as_external_data=False))"
            )
        (path / _FILE).write_bytes(data)
        return {
            "file": _FILE,
            "opsets": {op.domain or "ai.onnx": op.version for op in proto.opset_import},
            "onnx_version": _version("onnx"),
            "onnxruntime_version": _version("onnxruntime"),
        }

    def requirements(self, model: object) -> list[str]:
        return ["onnxruntime", "numpy"]

    def load(self, path: Path, options: dict[str, Any], *, trusted_code: bool) -> Predictor:
        """Open ``model.onnx`` (read as bytes) in an onnxruntime session on the CPU."""
        ort = _require("onnxruntime")
        file = resolve_inside(path, str(options.get("file", _FILE)))
        session = ort.InferenceSession(file.read_bytes(), providers=["CPUExecutionProvider"])
        model = OnnxModel(session)
        return OnnxClassifier(session) if model.proba_output is not None else model
