"""A model's input example, kept in its folder as ``input_example.json``.

The file has MLflow's split orient (``columns`` and ``data`` rows for a table, ``inputs`` for a
tensor) plus the dtype of each column or of the tensor, so that it reads back as the same
DataFrame or numpy array without pickle:

.. code-block:: json

    {"type": "dataframe", "columns": ["age", "city"], "dtypes": ["int64", "category"],
     "data": [[41, "Oslo"], [29, null]],
     "categories": [null, {"values": ["Lima", "Oslo"], "ordered": false}]}
    {"type": "ndarray", "dtype": "float32", "shape": [2, 3], "inputs": [[0.5, 1.0, 2.0], ...]}

``categories`` is there only when a column is categorical. Missing values are ``null``,
infinities the strings ``"Infinity"`` and ``"-Infinity"`` (the file is strict JSON), dates ISO
8601 text. The index of a DataFrame is not kept.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from shipyard.errors import InvalidArgumentError
from shipyard.models.signature import _as_frame

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    InputExample: TypeAlias = pd.DataFrame | np.ndarray[Any, Any]

__all__ = [
    "EXAMPLE_FILE",
    "MAX_EXAMPLE_ROWS",
    "MAX_EXAMPLE_VALUES",
    "read_input_example",
    "write_input_example",
]

EXAMPLE_FILE = "input_example.json"
MAX_EXAMPLE_ROWS = 100
MAX_EXAMPLE_VALUES = 100_000

log = logging.getLogger(__name__)


def write_input_example(data: Any, folder: Path) -> str | None:
    """Write the first rows of ``data`` into ``folder / EXAMPLE_FILE``.

    At most :data:`MAX_EXAMPLE_ROWS` rows are kept, and fewer when a row holds many values (an
    image): as many as fit in :data:`MAX_EXAMPLE_VALUES` values, one row at least. A dict of
    lists, a list of dicts or a Series is kept as a DataFrame, a list or a tensor as a numpy
    array, as :func:`~shipyard.models.infer_signature` reads them.

    Returns:
        The file's name, or ``None`` when the values have no JSON form (complex numbers, objects
        of other types); the model is then saved without its example and a warning is logged.

    Raises:
        InvalidArgumentError: the folder already holds a file of that name.
    """
    try:
        document = _encode(data)
        text = json.dumps(document, allow_nan=False, ensure_ascii=False) + "\n"
    except (TypeError, ValueError) as exc:
        log.warning("the input example is not stored with the model: %s", exc)
        return None
    try:
        with open(folder / EXAMPLE_FILE, "x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError as exc:
        raise InvalidArgumentError(
            f"the model's flavor wrote {EXAMPLE_FILE} itself; it cannot also keep the input example"
        ) from exc
    return EXAMPLE_FILE


def read_input_example(file: Path) -> InputExample:
    """The DataFrame or numpy array that :func:`write_input_example` wrote into ``file``.

    Raises:
        InvalidArgumentError: the file is not an input example this version reads.
    """
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
        kind = document["type"]
        if kind == "dataframe":
            return _decode_frame(document)
        if kind == "ndarray":
            return _decode_array(document)
        raise ValueError(f"unknown type {kind!r}")
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise InvalidArgumentError(f"{file.name} cannot be read: {exc}") from exc


def _rows_kept(rows: int, values_per_row: int) -> int:
    return min(rows, MAX_EXAMPLE_ROWS, max(1, MAX_EXAMPLE_VALUES // max(1, values_per_row)))


def _jsonable(value: Any) -> Any:
    """A plain JSON value: numpy scalars unwrapped, missing values ``None``."""
    import numpy as np
    import pandas as pd

    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, complex):
        raise TypeError("complex values have no JSON form")
    return value


def _encode_column(values: pd.Series) -> list[Any]:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return [None if pd.isna(v) else v.isoformat() for v in values]
    return [_jsonable(v) for v in values.astype(object)]


def _categories(dtype: Any) -> dict[str, Any] | None:
    """A category column's categories, which its values alone may not show."""
    import pandas as pd

    if not isinstance(dtype, pd.CategoricalDtype):
        return None
    return {"values": [_jsonable(c) for c in dtype.categories], "ordered": bool(dtype.ordered)}


def _encode(data: Any) -> dict[str, Any]:
    import numpy as np

    frame = _as_frame(data)
    if frame is not None:
        frame = frame.head(_rows_kept(len(frame), frame.shape[1]))
        columns = [c if isinstance(c, str | int) else str(c) for c in frame.columns]
        encoded = [_encode_column(frame.iloc[:, i]) for i in range(frame.shape[1])]
        document: dict[str, Any] = {
            "type": "dataframe",
            "columns": columns,
            "dtypes": [str(t) for t in frame.dtypes],
            "data": [list(row) for row in zip(*encoded, strict=True)],
        }
        categories = [_categories(t) for t in frame.dtypes]
        if any(c is not None for c in categories):
            document["categories"] = categories
        return document
    array = np.asarray(data)
    if array.ndim == 0:
        raise ValueError("an example without a batch dimension has no rows")
    array = array[: _rows_kept(len(array), math.prod(array.shape[1:]))]
    if array.dtype.kind == "M":
        inputs = np.datetime_as_string(array).tolist()
    elif array.dtype.kind in "biuU":
        inputs = array.tolist()
    else:
        inputs = np.frompyfunc(_jsonable, 1, 1)(array).tolist() if array.size else []
    return {
        "type": "ndarray",
        "dtype": str(array.dtype),
        "shape": list(array.shape),
        "inputs": inputs,
    }


def _decode_column(values: list[Any], dtype: str, categories: Any) -> pd.Series:
    import pandas as pd

    column = pd.Series(values, dtype=object)
    target = pd.api.types.pandas_dtype(dtype)
    if isinstance(target, pd.CategoricalDtype) and categories is not None:
        target = pd.CategoricalDtype(list(categories["values"]), bool(categories["ordered"]))
    if pd.api.types.is_datetime64_any_dtype(target):
        aware = isinstance(target, pd.DatetimeTZDtype)
        column = pd.to_datetime(column, format="ISO8601", utc=aware)
    return column.astype(target)


def _decode_frame(document: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd

    columns = list(document["columns"])
    dtypes = [str(t) for t in document["dtypes"]]
    rows = document["data"]
    if len(dtypes) != len(columns) or any(len(row) != len(columns) for row in rows):
        raise ValueError("its rows, columns and dtypes differ in length")
    categories = document.get("categories") or [None] * len(columns)
    decoded = {
        i: _decode_column([row[i] for row in rows], dtypes[i], categories[i])
        for i in range(len(columns))
    }
    return pd.DataFrame(decoded).set_axis(columns, axis=1)


def _decode_array(document: dict[str, Any]) -> np.ndarray[Any, Any]:
    import numpy as np

    dtype = np.dtype(str(document["dtype"]))
    shape = tuple(int(n) for n in document["shape"])
    raw = np.array(document["inputs"], dtype=object)
    if raw.size == 0:
        return np.empty(shape, dtype=dtype)
    if raw.shape != shape:
        raise ValueError(f"its values have shape {list(raw.shape)}, not {list(shape)}")
    return raw.astype(dtype)
