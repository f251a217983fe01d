"""The rows an export's parity check scores, and where they came from.

In order of preference: the rows the caller gave (``sample=``, ``--sample``); the table the
model's training run read; the model's stored input example followed by rows drawn from its
signature with a fixed seed (ranges and categories taken from the example), so that a model
logged with only ``input_example=`` can be exported too. The report names the source:
``dataset churn@3``, ``file rows.csv``, ``rows given as sample``,
``input example + signature (synthetic rows, seed 0)``, or ``signature (synthetic rows,
seed 0)`` for a model saved before its example was kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from shipyard.entities import DatasetVersion, ModelSignature, ModelVersion
    from shipyard.entities.models import ColumnSpec
    from shipyard.models.example import InputExample
    from shipyard.tracking import Workspace

__all__ = [
    "EXAMPLE_SOURCE",
    "SEED",
    "SYNTHETIC_ROWS",
    "SYNTHETIC_SOURCE",
    "ParityRows",
    "parity_rows",
    "synthetic_rows",
]

MAX_ROWS = 1000
SYNTHETIC_ROWS = 200
SEED = 0
_CATEGORICAL = ("string", "category", "object")
SYNTHETIC_SOURCE = f"signature (synthetic rows, seed {SEED})"
EXAMPLE_SOURCE = f"input example + {SYNTHETIC_SOURCE}"


@dataclass(frozen=True, slots=True)
class ParityRows:
    """Rows to compare the exported model with the native one on."""

    frame: pd.DataFrame
    source: str
    """Where they came from, for the report: ``dataset churn@3``, ``signature (...)``."""


def parity_rows(
    sample: Any,
    version: ModelVersion,
    signature: ModelSignature | None,
    ws: Workspace,
    home: str | os.PathLike[str] | None,
    *,
    example: InputExample | None = None,
) -> ParityRows:
    """The rows to check parity on: ``sample``, else the run's table, else the example's and
    the signature's.

    Args:
        sample: what the caller gave (a DataFrame, an array, a CSV/Parquet path or a dataset
            ``name@v``), or ``None``.
        version: the model version being exported (its run tells which table it read).
        signature: the model's signature, to draw rows from when there is no table.
        ws: the workspace the version lives in.
        home: the workspace's home, to load datasets from.
        example: the model's stored input example: when there is no table, its rows come
            first, then 200 drawn from the signature within its ranges and categories.

    Returns:
        At most 1,000 rows and a description of their source.

    Raises:
        InvalidArgumentError: ``sample`` has no rows, or there is no table and no signature
            to draw rows from (the message says how to log the model so there is one).
    """
    if sample is not None:
        frame, source = _given(sample, home)
    else:
        tables = _run_tables(version, ws)
        if tables:
            frame, source = _load_dataset(tables[0], home)
        elif signature is not None and signature.inputs:
            frame, source = _signature_rows(signature, _example_frame(example))
        else:
            raise InvalidArgumentError(_no_rows_message(version))
    if len(frame) == 0:
        raise InvalidArgumentError(f"the parity sample ({source}) has no rows")
    return ParityRows(frame.head(MAX_ROWS).reset_index(drop=True), source)


def _example_frame(example: InputExample | None) -> pd.DataFrame | None:
    """The example as a table: a DataFrame, or a ``(batch, features)`` array's columns."""
    import pandas as pd

    if example is None or isinstance(example, pd.DataFrame):
        return example
    return pd.DataFrame(example) if example.ndim == 2 else None


def _signature_rows(
    signature: ModelSignature, example: pd.DataFrame | None
) -> tuple[pd.DataFrame, str]:
    import pandas as pd

    drawn = synthetic_rows(signature, rows=SYNTHETIC_ROWS, seed=SEED, example=example)
    if example is None or example.empty:
        return drawn, SYNTHETIC_SOURCE
    return pd.concat([example, drawn], ignore_index=True), EXAMPLE_SOURCE


def _run_tables(version: ModelVersion, ws: Workspace) -> list[DatasetVersion]:
    if not version.run_id:
        return []
    used = ws.backend.run_dataset_versions([version.run_id], "input")
    return [v for _, v in used if v.format in ("csv", "parquet")]


def _load_dataset(
    dataset: DatasetVersion, home: str | os.PathLike[str] | None
) -> tuple[pd.DataFrame, str]:
    from shipyard import data

    return data.load(dataset.ref, home=home), f"dataset {dataset.ref}"


def _given(sample: Any, home: str | os.PathLike[str] | None) -> tuple[pd.DataFrame, str]:
    import pandas as pd

    from shipyard import data

    if isinstance(sample, str | os.PathLike):
        text = os.fspath(sample)
        path = Path(text)
        if path.is_file():
            frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
            return frame, f"file {path.name}"
        return _load_dataset(data.resolve(text, home=home), home)
    if isinstance(sample, pd.DataFrame):
        return sample, "rows given as sample"
    import numpy as np

    return pd.DataFrame(np.asarray(sample)), "rows given as sample"


def _no_rows_message(version: ModelVersion) -> str:
    reason = "its run read no table" if version.run_id else "it was not logged by a run"
    return (
        f"{version.model}@{version.version} has no rows to check parity on: {reason} and it "
        "has no signature to draw rows from. Log it with an input example, which records the "
        f"signature (run.log_model(model, {version.model!r}, input_example=X.head())), or give "
        "rows with --sample DATASET@v or sample=<DataFrame>"
    )


def synthetic_rows(
    signature: ModelSignature,
    *,
    rows: int = SYNTHETIC_ROWS,
    seed: int = SEED,
    example: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``rows`` rows that fit ``signature``, the same ones for the same ``seed``.

    Numbers are spread over the example's range (uniformly) when an example is given, else
    drawn from a standard normal; integer columns get integers (0-10 without an example),
    booleans either value, string and categorical columns values the example holds. Floats
    are rounded to float32 so that a float32 model sees exactly the values the native model
    saw. A tensor signature of shape ``(batch, k)`` gives ``k`` columns named ``0..k-1``.

    Args:
        signature: a column signature, or a tensor one with two dimensions.
        rows: how many rows to draw.
        seed: the seed of the random generator.
        example: rows of the model's input example, for ranges and categories.

    Raises:
        InvalidArgumentError: a column's values cannot be drawn (text without an example, a
            datetime, a tensor with more than two dimensions).

    Example:
        >>> synthetic_rows(model.signature, rows=3).shape  # doctest: +SKIP
        (3, 30)
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    if signature.is_tensor:
        spec = signature.inputs[0]
        shape = spec.shape or ()
        if len(shape) != 2 or shape[1] < 1:
            raise InvalidArgumentError(
                f"cannot draw rows for a tensor of shape {list(shape)} (only (batch, features)); "
                "give rows with --sample or sample=<array>"
            )
        columns: dict[Any, Any] = {}
        for i in range(shape[1]):
            seen = example[example.columns[i]] if example is not None else None
            columns[i] = _draw(spec, f"feature {i}", rows, rng, seen)
        return pd.DataFrame(columns)
    return pd.DataFrame(
        {
            spec.name: _draw(
                spec,
                repr(spec.name),
                rows,
                rng,
                example[spec.name] if example is not None and spec.name in example else None,
            )
            for spec in signature.inputs
        }
    )


def _draw(
    spec: ColumnSpec,
    label: str,
    rows: int,
    rng: np.random.Generator,
    seen: pd.Series | None,
) -> np.ndarray[Any, Any]:
    import numpy as np

    known = seen.dropna() if seen is not None else None
    if spec.type in _CATEGORICAL:
        if known is None or known.empty:
            raise InvalidArgumentError(
                f"cannot draw {spec.type} values for {label} without an input example; give "
                "rows with --sample or sample=<DataFrame>"
            )
        return rng.choice(np.asarray(known.unique(), dtype=object), size=rows)
    try:
        dtype = np.dtype(spec.type)
    except TypeError as exc:
        raise InvalidArgumentError(f"cannot draw {spec.type} values for {label}") from exc
    numbers = known.astype("float64") if known is not None and not known.empty else None
    if dtype.kind == "b":
        return rng.random(rows) < 0.5
    if dtype.kind in "iu":
        first, last = (0, 10) if numbers is None else (int(numbers.min()), int(numbers.max()))
        return rng.integers(first, last, size=rows, endpoint=True).astype(dtype)
    if dtype.kind == "f":
        if numbers is None:
            values = rng.standard_normal(rows)
        else:
            low, high = float(numbers.min()), float(numbers.max())
            if low == high:  # one example row: spread around it
                low, high = low - max(abs(low), 1.0) / 2, high + max(abs(high), 1.0) / 2
            values = rng.uniform(low, high, size=rows)
        return values.astype("float32").astype(dtype)
    raise InvalidArgumentError(f"cannot draw {spec.type} values for {label}")
