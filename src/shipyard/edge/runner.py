"""Run an exported ONNX package with nothing but the standard library, numpy and onnxruntime.

This file must stay self-contained: ``shipyard export`` copies it into the package as
``shipyard_edge.py`` so that a device without Shipyard can run ``python shipyard_edge.py DIR
input.csv``. Import nothing from Shipyard here.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["EdgeError", "EdgeModel", "main"]

MANIFEST = "manifest.json"
_CHUNK = 1 << 20


class EdgeError(Exception):
    """The package or the input cannot be used; the message says why."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class EdgeModel:
    """An exported package: ``manifest.json`` and ``model.onnx`` (verified before loading)."""

    def __init__(self, folder: str | Path, *, quantized: bool = False) -> None:
        root = Path(folder)
        try:
            self.manifest: dict[str, Any] = json.loads((root / MANIFEST).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise EdgeError(f"{root} is not an exported package: {exc}") from exc
        name = "model.int8.onnx" if quantized else "model.onnx"
        entry = self.manifest.get("files", {}).get(name)
        if entry is None:
            raise EdgeError(f"the package has no {name}")
        path = root / name
        if not path.is_file() or _sha256(path) != entry["sha256"]:
            raise EdgeError(f"{name} does not match its sha256 in {MANIFEST}; re-export it")
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.features: list[str] | None = self.manifest.get("features")
        self.n_features = int(self.manifest["n_features"])
        self.dtype = str(self.manifest["input"]["dtype"])
        self.input_name = str(self.manifest["input"]["name"])

    def matrix_from_csv(self, path: str | Path) -> Any:
        """Read a CSV with a header into a 2-D array in the model's column order."""
        import numpy as np

        with open(path, newline="", encoding="utf-8") as file:
            reader = csv.reader(file)
            try:
                header = next(reader)
            except StopIteration:
                raise EdgeError(f"{path} is empty") from None
            if self.features is not None:
                missing = [f for f in self.features if f not in header]
                if missing:
                    raise EdgeError(f"{path} lacks column(s) the model needs: {', '.join(missing)}")
                index = [header.index(f) for f in self.features]
            else:
                if len(header) != self.n_features:
                    raise EdgeError(
                        f"the model takes {self.n_features} columns; {path} has {len(header)}"
                    )
                index = list(range(len(header)))
            rows = []
            for line, row in enumerate(reader, start=2):
                try:
                    rows.append([float(row[i]) if row[i] != "" else float("nan") for i in index])
                except (ValueError, IndexError) as exc:
                    raise EdgeError(f"{path}, line {line}: {exc}") from None
        return np.asarray(rows, dtype=self.dtype).reshape(len(rows), self.n_features)

    def predict(self, matrix: Any) -> dict[str, Any]:
        """Outputs by name: ``prediction`` and, for classifiers, ``probabilities``."""
        names = [o["name"] for o in self.manifest["outputs"]]
        values = self.session.run(names, {self.input_name: matrix})
        return {o["role"]: v for o, v in zip(self.manifest["outputs"], values, strict=True)}

    def rows(self, outputs: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
        """A header and rows for the outputs of :meth:`predict`."""
        import numpy as np

        header: list[str] = []
        columns: list[Any] = []
        prediction = np.asarray(outputs["prediction"])
        if prediction.ndim == 2 and prediction.shape[1] == 1:
            prediction = prediction[:, 0]
        if prediction.ndim == 1:
            header.append("prediction")
            columns.append(prediction)
        else:
            for i in range(prediction.shape[1]):
                header.append(f"prediction_{i}")
                columns.append(prediction[:, i])
        if "probabilities" in outputs:
            proba = np.asarray(outputs["probabilities"])
            classes = self.manifest.get("classes") or [str(i) for i in range(proba.shape[1])]
            for i, label in enumerate(classes):
                header.append(f"proba_{label}")
                columns.append(proba[:, i])
        rows = [[_plain(c[r]) for c in columns] for r in range(len(prediction))]
        return header, rows


def _plain(value: Any) -> Any:
    item = value.item() if hasattr(value, "item") else value
    if isinstance(item, float):
        return repr(item)
    return item


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shipyard.edge",
        description="Score a CSV with an exported ONNX package (needs numpy and onnxruntime).",
    )
    parser.add_argument("package", help="folder written by `shipyard export --format onnx`")
    parser.add_argument("input", help="CSV file with a header row")
    parser.add_argument("--output", "-o", help="write predictions to this CSV (default: stdout)")
    parser.add_argument("--quantized", action="store_true", help="use model.int8.onnx")
    args = parser.parse_args(argv)
    try:
        model = EdgeModel(args.package, quantized=args.quantized)
        header, rows = model.rows(model.predict(model.matrix_from_csv(args.input)))
    except (EdgeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    if args.output:
        with open(args.output, "w", newline="", encoding="utf-8") as file:
            _write(file, header, rows)
    else:
        _write(sys.stdout, header, rows)
    return 0


def _write(file: Any, header: list[str], rows: list[list[Any]]) -> None:
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


if __name__ == "__main__":
    sys.exit(main())
