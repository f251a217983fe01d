"""Export a registered model to an ONNX package that runs where Shipyard does not.

The package is a folder: ``model.onnx``, ``manifest.json`` (signature, digests, source model
version, opset), ``parity.json`` (how far onnxruntime's answers are from the native model's,
and on which rows: see :mod:`shipyard.export.rows`) and ``shipyard_edge.py`` (the stand-alone
runner). It is written into a temporary sibling folder and renamed into place only when parity
holds, so a failed export leaves nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import AlreadyExistsError, InvalidArgumentError, ShipyardError
from shipyard.export.rows import parity_rows

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from shipyard.entities import ModelVersion
    from shipyard.models.package import LoadedModel

__all__ = ["ExportResult", "ParityError", "export_onnx"]

MANIFEST_FORMAT = "shipyard.edge/1"
_OPSET = 17
_INPUT = "input"
_HINT = "ONNX export needs onnx, onnxruntime and skl2onnx: pip install 'shipyard-mlops[onnx]'"


class ParityError(ShipyardError):
    """The exported model's answers differ from the native model's beyond the tolerance.

    Attributes:
        parity: the report that failed (what ``parity.json`` would have held).
    """

    def __init__(self, message: str, parity: dict[str, Any]) -> None:
        self.parity = parity
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What :func:`export_onnx` wrote."""

    path: Path
    source: str
    """``name@N`` of the exported model version."""
    parity: dict[str, Any]
    manifest: dict[str, Any] = field(repr=False)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _file_entry(path: Path) -> dict[str, Any]:
    from shipyard.artifacts import hash_file

    return {"sha256": _sha256(path), "blake3": hash_file(path), "size": path.stat().st_size}


@contextlib.contextmanager
def _quiet_exporters() -> Iterator[None]:
    """Converters warn about their own internals (deprecations in torch's tree utilities,
    missing optional torchvision ops); none of it concerns the user's model."""
    names = ("torch.onnx", "torch.export", "onnxscript", "")  # "": the quantizer logs to root
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _features(model: LoadedModel, frame: pd.DataFrame) -> tuple[list[str] | None, pd.DataFrame]:
    signature = model.signature
    if signature is not None and not signature.is_tensor:
        names = list(signature.input_names)
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise InvalidArgumentError(f"the parity sample lacks column(s): {', '.join(missing)}")
        return names, frame[names]
    return None, frame


def _refuse_non_numeric(model: LoadedModel) -> None:
    """Refuse text and dates before any rows are looked for: no rows could make them work."""
    signature = model.signature
    if signature is None or signature.is_tensor:
        return
    for spec in signature.inputs:
        if spec.type in ("string", "category") or spec.type.startswith(("datetime", "timedelta")):
            raise InvalidArgumentError(
                f"ONNX export supports numeric inputs only; {spec.name!r} is {spec.type}"
            )


def _matrix(frame: pd.DataFrame, dtype: str) -> np.ndarray[Any, Any]:
    import numpy as np
    import pandas as pd

    non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        first = non_numeric[0]
        raise InvalidArgumentError(
            f"ONNX export supports numeric inputs only; {first!r} is {frame[first].dtype}"
        )
    return np.array(frame.to_numpy(dtype=dtype), order="C")  # writable: torch warns otherwise


def _convert_sklearn(model: LoadedModel, width: int, target: Path) -> list[dict[str, str]]:
    try:
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import (
            FloatTensorType,
        )
    except ImportError as exc:
        raise InvalidArgumentError(_HINT) from exc
    estimator = model.model
    with _quiet_exporters():
        try:
            proto = to_onnx(
                estimator,
                initial_types=[(_INPUT, FloatTensorType([None, width]))],
                options={"zipmap": False} if model.has_predict_proba else None,
                target_opset={"": _OPSET, "ai.onnx.ml": 3},
            )
        except Exception as exc:
            raise InvalidArgumentError(
                f"skl2onnx cannot convert a {model.meta.model_type}: {type(exc).__name__}: {exc}"
            ) from exc
    _dedupe_opsets(proto)
    target.write_bytes(proto.SerializeToString())
    names = [o.name for o in proto.graph.output]
    if model.has_predict_proba:
        return [
            {"name": names[0], "role": "prediction"},
            {"name": names[1], "role": "probabilities"},
        ]
    return [{"name": names[0], "role": "prediction"}]


def _dedupe_opsets(proto: Any) -> None:
    """skl2onnx can list a domain twice, which onnxruntime's quantizer refuses."""
    seen: dict[str, int] = {}
    for entry in proto.opset_import:
        seen[entry.domain] = max(seen.get(entry.domain, 0), int(entry.version))
    del proto.opset_import[:]
    for domain, version in seen.items():
        proto.opset_import.add(domain=domain, version=version)


def _convert_torch(model: LoadedModel, target: Path) -> list[dict[str, str]]:
    import torch

    from shipyard.artifacts import resolve_inside

    file = resolve_inside(model.path, str(model.meta.flavor_options.get("file", "model.pt2")))
    program = torch.export.load(file)  # checked by load_model, which needed trusted_code
    with _quiet_exporters():
        try:
            exported = torch.onnx.export(program, dynamo=True, optimize=True, verbose=False)
        except ImportError as exc:
            raise InvalidArgumentError(
                "exporting PyTorch to ONNX needs onnxscript: pip install 'shipyard-mlops[onnx]'"
            ) from exc
        except Exception as exc:
            raise InvalidArgumentError(f"torch.onnx.export failed: {exc}") from exc
        if exported is None:
            raise InvalidArgumentError("torch.onnx.export returned no program")
        exported.save(str(target))
    import onnx

    graph = onnx.load(str(target), load_external_data=False).graph
    if len(graph.input) != 1:
        raise InvalidArgumentError("only models with one input tensor can be exported")
    return [{"name": graph.output[0].name, "role": "prediction", "input": graph.input[0].name}]


def _run(path: Path, input_name: str, outputs: list[dict[str, str]], x: Any) -> dict[str, Any]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    values = session.run([o["name"] for o in outputs], {input_name: x})
    return {o["role"]: v for o, v in zip(outputs, values, strict=True)}


def _parity(native: dict[str, Any], onnx_out: dict[str, Any], classifier: bool) -> dict[str, Any]:
    import numpy as np

    report: dict[str, Any] = {}
    if classifier:
        ours = np.asarray(native["prediction"]).reshape(-1)
        theirs = np.asarray(onnx_out["prediction"]).reshape(-1)
        report["label_mismatches"] = int(np.sum(ours.astype(str) != theirs.astype(str)))
        diff = np.abs(
            np.asarray(native["probabilities"], dtype="float64") - onnx_out["probabilities"]
        )
    else:
        expected = np.asarray(native["prediction"], dtype="float64")
        got = np.asarray(onnx_out["prediction"], dtype="float64").reshape(expected.shape)
        diff = np.abs(expected - got)
    report["max_abs_diff"] = float(diff.max()) if diff.size else 0.0
    return report


def _within(report: dict[str, Any], tolerance: float) -> bool:
    return bool(report["max_abs_diff"] <= tolerance and report.get("label_mismatches", 0) == 0)


def export_onnx(
    ref: str,
    out_dir: str | os.PathLike[str],
    *,
    tolerance: float = 1e-4,
    quantize: bool = False,
    quantized_tolerance: float | None = None,
    sample: Any = None,
    trusted_code: bool = False,
    home: str | os.PathLike[str] | None = None,
) -> ExportResult:
    """Export a registered model to an ONNX package and prove it answers like the original.

    Args:
        ref: the model, ``name@3`` / ``name@champion``. scikit-learn models convert with
            skl2onnx, PyTorch models with ``torch.onnx.export`` (dynamo).
        out_dir: a folder that does not exist yet (or is empty).
        tolerance: the largest accepted difference between ONNX and native outputs
            (probabilities for classifiers, which must also agree on every label; the
            predictions otherwise).
        quantize: also write ``model.int8.onnx`` (dynamic int8 quantization); its parity is
            reported and only enforced when ``quantized_tolerance`` is given.
        quantized_tolerance: fail when the quantized model is further off than this.
        sample: rows to compare on: a DataFrame, an array, a CSV/Parquet path or a dataset
            ``name@v``. Default: the table the model's training run read (first 1,000 rows),
            else the model's stored input example followed by 200 rows drawn from its
            signature with a fixed seed, within the example's ranges. The report's
            ``rows_source`` says which.
        trusted_code: needed to load PyTorch models (see ``shipyard.models.load``).
        home: workspace (default: ``SHIPYARD_HOME`` or the nearest ``.shipyard/``).

    Returns:
        The folder written, the source version and the parity report.

    Raises:
        ParityError: the ONNX model is off by more than ``tolerance``; nothing is written.
        InvalidArgumentError: the flavor cannot be exported, the signature has non-numeric
            inputs, or no rows are available (no sample, no table and no signature).
        AlreadyExistsError: ``out_dir`` exists and is not empty.

    Example:
        >>> export_onnx("cancer@champion", "edge/cancer", quantize=True)  # doctest: +SKIP
    """
    import shipyard
    from shipyard.models.logged import model_path
    from shipyard.models.package import load_model
    from shipyard.registry import Registry

    if not tolerance >= 0:
        raise InvalidArgumentError("tolerance must be a number >= 0")
    target = Path(out_dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise AlreadyExistsError(f"{target} already exists; export into a new folder")
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise InvalidArgumentError(_HINT) from exc
    ws = shipyard.open_workspace(home)
    version = Registry(ws.backend, ws.settings.user).resolve(ref)
    source = f"{version.model}@{version.version}"
    model = load_model(model_path(version, ws), trusted_code=trusted_code)
    if model.meta.flavor not in ("sklearn", "torch"):
        raise InvalidArgumentError(
            f"cannot export a {model.meta.flavor} model to ONNX (sklearn and torch can be)"
        )
    _refuse_non_numeric(model)
    rows = parity_rows(sample, version, model.signature, ws, home, example=model.input_example)
    features, frame = _features(model, rows.frame)
    dtype = "float32"
    if model.meta.flavor == "torch":
        dtype = str(model.meta.flavor_options.get("input_dtype", "float32"))
    x = _matrix(frame, dtype)
    classifier = model.meta.flavor == "sklearn" and model.has_predict_proba
    native = {"prediction": model.predict(frame if features is not None else x)}
    if classifier:
        native["probabilities"] = model.predict_proba(frame)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    staging.mkdir()
    try:
        onnx_file = staging / "model.onnx"
        if model.meta.flavor == "sklearn":
            outputs = _convert_sklearn(model, x.shape[1], onnx_file)
            input_name = _INPUT
        else:
            outputs = _convert_torch(model, onnx_file)
            input_name = outputs[0].pop("input")
        report = _parity(native, _run(onnx_file, input_name, outputs, x), classifier)
        parity: dict[str, Any] = {
            "rows": len(x),
            "rows_source": rows.source,
            "tolerance": tolerance,
            "model.onnx": {**report, "passed": _within(report, tolerance)},
        }
        files = {"model.onnx": onnx_file}
        if quantize:
            quantized = staging / "model.int8.onnx"
            _quantize(onnx_file, quantized)
            q_report = _parity(native, _run(quantized, input_name, outputs, x), classifier)
            parity["model.int8.onnx"] = {
                **q_report,
                "tolerance": quantized_tolerance,
                "passed": (
                    _within(q_report, quantized_tolerance)
                    if quantized_tolerance is not None
                    else None
                ),
            }
            files["model.int8.onnx"] = quantized
        failed = [n for n in files if parity[n]["passed"] is False]
        if failed:
            worst = parity[failed[0]]
            raise ParityError(
                f"{failed[0]} differs from {source} by up to {worst['max_abs_diff']:.3g}"
                f"{_mismatch_note(worst)} on {len(x)} rows from {rows.source}; the tolerance is "
                f"{parity[failed[0]].get('tolerance') or tolerance:g}. Nothing was written",
                parity,
            )
        manifest = _manifest(model, version, source, features, x, dtype, input_name, outputs, files)
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
        (staging / "parity.json").write_text(json.dumps(parity, indent=2) + "\n", "utf-8")
        runner = Path(__file__).resolve().parent.parent / "edge" / "runner.py"
        shutil.copyfile(runner, staging / "shipyard_edge.py")
        if target.exists():
            target.rmdir()  # empty, checked above
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(target, source, parity, manifest)


def _mismatch_note(report: dict[str, Any]) -> str:
    count = report.get("label_mismatches", 0)
    return f" ({count} label(s) differ)" if count else ""


def _quantize(source: Path, target: Path) -> None:
    from onnxruntime.quantization import (
        QuantType,
        quantize_dynamic,
    )

    with _quiet_exporters():
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)


def _manifest(
    model: LoadedModel,
    version: ModelVersion,
    source: str,
    features: list[str] | None,
    x: Any,
    dtype: str,
    input_name: str,
    outputs: list[dict[str, str]],
    files: dict[str, Path],
) -> dict[str, Any]:
    import onnx

    proto = onnx.load(str(files["model.onnx"]), load_external_data=False)
    classes = getattr(model.model, "classes_", None)
    return {
        "format": MANIFEST_FORMAT,
        "source": {
            "model": version.model,
            "version": version.version,
            "ref": source,
            "digest": version.digest,
            "flavor": model.meta.flavor,
            "model_type": model.meta.model_type,
        },
        "signature": model.signature.to_dict() if model.signature is not None else None,
        "features": features,
        "n_features": int(x.shape[1]),
        "input": {"name": input_name, "dtype": dtype},
        "outputs": outputs,
        "classes": [str(c) for c in classes] if classes is not None else None,
        "files": {name: _file_entry(path) for name, path in files.items()},
        "opset": {op.domain or "ai.onnx": int(op.version) for op in proto.opset_import},
        "created": dt.datetime.now(tz=dt.UTC).isoformat(timespec="seconds"),
    }
