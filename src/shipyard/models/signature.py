"""Model signatures: inferred from an input example, enforced before every prediction.

A signature is either named **columns** (the example was a pandas DataFrame) or one **tensor**
(the example was a numpy array, shape recorded with ``-1`` for the batch dimension). Input that
does not match gets an :class:`InputMismatchError` naming the column or tensor at fault, never
a traceback from deep inside numpy or scikit-learn. ``docs/models.md`` states the rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.entities.models import ColumnSpec, ModelSignature
from shipyard.errors import InputMismatchError, InvalidArgumentError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "InputMismatchError",
    "enforce_signature",
    "infer_schema",
    "infer_signature",
]

TENSOR_INPUT_NAME = "input"
TENSOR_OUTPUT_NAME = "output"


def _kind(dtype: Any) -> str:
    """One of bool, integer, float, complex, string, datetime, category, object."""
    import numpy as np
    import pandas as pd

    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_complex_dtype(dtype):
        return "complex"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_string_dtype(dtype) and not (
        isinstance(dtype, np.dtype) and dtype.kind == "O"
    ):
        return "string"
    return "object"


def _type_kind(type_name: str) -> str:
    """The kind of a type name written in a signature."""
    if type_name in ("string", "category", "object"):
        return type_name
    if type_name.startswith("datetime64"):
        return "datetime"
    import numpy as np

    return _kind(np.dtype(type_name))


def _type_name(values: Any) -> str:
    """The signature type of a Series or array: a numpy dtype name or string/category/object."""
    import pandas as pd

    dtype = values.dtype
    kind = _kind(dtype)
    if kind in ("bool", "integer", "float", "complex"):
        return str(getattr(dtype, "numpy_dtype", dtype))
    if kind == "datetime":
        return str(dtype)
    if kind == "object":
        inferred = pd.api.types.infer_dtype(values, skipna=True)
        if inferred in ("string", "empty"):
            return "string"
    return kind


def infer_schema(data: Any, *, tensor_name: str = TENSOR_INPUT_NAME) -> tuple[ColumnSpec, ...]:
    """The column or tensor specs of ``data``.

    Args:
        data: a DataFrame or Series (named columns); a numpy array, a list of lists or a scalar
            list (one tensor); a dict of lists or a list of dicts (read as a DataFrame).
        tensor_name: the name given to a tensor spec.

    Raises:
        InvalidArgumentError: when ``data`` is empty or of a kind that has no schema.
    """
    import numpy as np

    frame = _as_frame(data)
    if frame is not None:
        if frame.columns.size == 0:
            raise InvalidArgumentError("the example has no columns")
        return tuple(ColumnSpec(str(name), _type_name(frame[name])) for name in frame.columns)
    try:
        array = np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"cannot infer a schema from {type(data).__name__}") from exc
    if array.ndim == 0:
        raise InvalidArgumentError("the example must have a batch dimension, not be a scalar")
    type_name = _type_name(array) if array.dtype.kind != "U" else "string"
    return (ColumnSpec(tensor_name, type_name, (-1, *array.shape[1:])),)


def infer_signature(input_example: Any, output_example: Any = None) -> ModelSignature:
    """The signature of a model that takes ``input_example`` and returns ``output_example``.

    Example:
        >>> sig = infer_signature(X.head(), model.predict(X.head()))  # doctest: +SKIP
        >>> [c.name for c in sig.inputs]  # doctest: +SKIP
        ['mean radius', 'mean texture', ...]
    """
    inputs = infer_schema(input_example)
    outputs = (
        infer_schema(output_example, tensor_name=TENSOR_OUTPUT_NAME)
        if output_example is not None
        else ()
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def _as_frame(data: Any) -> pd.DataFrame | None:
    """``data`` as a DataFrame when it is table-like (frame, series, dict, list of dicts)."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame()
    if isinstance(data, dict):
        import numpy as np

        if all(np.ndim(v) == 0 for v in data.values()):
            return pd.DataFrame([data])
        return pd.DataFrame(data)
    if isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
        return pd.DataFrame(data)
    return None


def _names(names: list[str] | set[str]) -> str:
    return ", ".join(repr(n) for n in sorted(names))


def _coerce_column(name: str, values: pd.Series, spec: ColumnSpec) -> pd.Series:
    """``values`` converted to what ``spec`` asks, when that loses nothing."""
    import numpy as np
    import pandas as pd

    want = _type_kind(spec.type)
    got = _kind(values.dtype)
    if got == "object":
        inferred = pd.api.types.infer_dtype(values, skipna=True)
        got = {
            "integer": "integer",
            "floating": "float",
            "mixed-integer-float": "float",
            "boolean": "bool",
            "string": "string",
            "empty": want,
        }.get(inferred, "object")
    ok = {
        "float": ("float", "integer"),
        "integer": ("integer",),
        "bool": ("bool",),
        "complex": ("complex", "float", "integer"),
        "string": ("string",),
        "category": ("category", "string"),
        "datetime": ("datetime",),
        "object": ("object", "string", "integer", "float", "bool", "category", "datetime"),
    }[want]
    if got not in ok:
        raise InputMismatchError(
            name,
            f"column {name!r} expects {spec.type} values, got {_describe(values, got)}",
        )
    if want in ("float", "integer", "bool", "complex"):
        target = np.dtype(spec.type)
        try:
            with np.errstate(over="ignore"):  # overflow is looked for below
                coerced = values.astype(target)
        except OverflowError:  # a Python int beyond int64/uint64
            coerced = None
        except (TypeError, ValueError) as exc:  # missing values in an int column, say
            raise InputMismatchError(
                name,
                f"column {name!r} expects {spec.type} values and cannot hold what it got "
                f"(missing values?): {exc}",
            ) from exc
        if coerced is None or (
            not _safe_cast(values.dtype, target) and _overflows(values, coerced, target)
        ):
            raise InputMismatchError(
                name, f"column {name!r} expects {spec.type} values; some are out of its range"
            )
        return coerced
    return values


def _safe_cast(dtype: Any, target: np.dtype[Any]) -> bool:
    import numpy as np

    return isinstance(dtype, np.dtype) and bool(np.can_cast(dtype, target, "safe"))


def _overflows(values: pd.Series, coerced: pd.Series, target: np.dtype[Any]) -> bool:
    """Whether casting ``values`` to ``target`` wrapped an integer or made a number infinite
    (300 into int8, 2**64-1 into int64, 1e300 into float32)."""
    import numpy as np

    if target.kind in "iu":
        info = np.iinfo(target)
        source = values.dropna()
        return bool(source.size) and (source.min() < info.min or source.max() > info.max)
    if target.kind in "fc":
        was = values.astype(np.float64 if values.dtype.kind != "c" else np.complex128)
        return bool((np.isinf(coerced.to_numpy()) & np.isfinite(was.to_numpy())).any())
    return False


def _describe(values: Any, kind: str) -> str:
    """A short, user-facing description of what is in ``values``."""
    if kind == "object" or kind == "string":
        texts = [value for value in values if isinstance(value, str)]
        for text in texts:
            try:
                float(text)
            except ValueError:
                return f"text such as {text[:40]!r}"
        if texts:
            return f"text such as {texts[0][:40]!r}"
        return "values of mixed types"
    return f"{kind} values ({values.dtype})"


def _enforce_columns(data: Any, specs: tuple[ColumnSpec, ...]) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    expected = [spec.name for spec in specs]
    frame = _as_frame(data)
    if frame is None:
        array = np.asarray(data)
        if array.ndim != 2:
            raise InputMismatchError(
                expected[0],
                f"the model takes a table with columns {_names(set(expected))}; got an array "
                f"of shape {array.shape}",
            )
        if array.shape[1] != len(expected):
            raise InputMismatchError(
                "features",
                f"the model takes {len(expected)} features, got {array.shape[1]}",
            )
        frame = pd.DataFrame(array, columns=expected)
    present = [str(c) for c in frame.columns]
    missing = set(expected) - set(present)
    if missing:
        raise InputMismatchError(
            sorted(missing)[0], f"missing column{'s' if len(missing) > 1 else ''} {_names(missing)}"
        )
    extra = set(present) - set(expected)
    if extra:
        raise InputMismatchError(
            sorted(extra)[0],
            f"unexpected column{'s' if len(extra) > 1 else ''} {_names(extra)} "
            f"(the model takes {len(expected)} columns)",
        )
    if len(present) != len(set(present)):
        dupes = {n for n in present if present.count(n) > 1}
        raise InputMismatchError(sorted(dupes)[0], f"duplicate columns {_names(dupes)}")
    if present != list(frame.columns):
        frame = frame.set_axis(present, axis=1)
    # Selecting keeps the frame's memory layout, so a model gets bit-identical input (and
    # gives bit-identical output) when nothing needs converting.
    result = frame if present == expected else frame.loc[:, expected]
    for spec in specs:
        values = result[spec.name]
        coerced = _coerce_column(spec.name, values, spec)
        if coerced.dtype != values.dtype:
            if result is frame:
                result = frame.copy()
            result[spec.name] = coerced
    return result


def _enforce_tensor(data: Any, spec: ColumnSpec) -> np.ndarray[Any, Any]:
    import numpy as np
    import pandas as pd

    assert spec.shape is not None  # noqa: S101 - only called for tensor specs
    name = spec.name
    if isinstance(data, pd.DataFrame | pd.Series):
        data = data.to_numpy()
    try:
        array = np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise InputMismatchError(name, f"tensor {name!r}: cannot read the input ({exc})") from exc
    want_shape = spec.shape
    if array.ndim == len(want_shape) - 1 and len(want_shape) > 1:
        array = array[np.newaxis, ...]
    if array.ndim != len(want_shape):
        raise InputMismatchError(
            name,
            f"tensor {name!r} expects {len(want_shape)} dimensions {_shape(want_shape)}, "
            f"got {array.ndim} {_shape(array.shape)}",
        )
    for axis, (want, got) in enumerate(zip(want_shape, array.shape, strict=True)):
        if want != -1 and want != got:
            what = "features" if axis == 1 and len(want_shape) == 2 else f"size on axis {axis}"
            raise InputMismatchError(
                name,
                f"tensor {name!r} expects {want} {what}, got {got} "
                f"(shape {_shape(want_shape)}, input {_shape(array.shape)})",
            )
    want_kind = _type_kind(spec.type)
    if want_kind in ("float", "integer", "bool", "complex"):
        got_kind = _kind(array.dtype)
        allowed = {
            "float": ("float", "integer"),
            "integer": ("integer",),
            "bool": ("bool",),
            "complex": ("complex", "float", "integer"),
        }[want_kind]
        if got_kind == "object" or got_kind == "string" or array.dtype.kind in "US":
            try:
                return array.astype(spec.type)
            except (TypeError, ValueError) as exc:
                raise InputMismatchError(
                    name,
                    f"tensor {name!r} expects {spec.type} values, got "
                    f"{_describe(array.ravel(), 'object')}",
                ) from exc
        if got_kind not in allowed:
            raise InputMismatchError(
                name, f"tensor {name!r} expects {spec.type} values, got {array.dtype}"
            )
        target = np.dtype(spec.type)
        if _safe_cast(array.dtype, target):
            return array.astype(target, copy=False)
        with np.errstate(over="ignore", invalid="ignore"):
            cast = array.astype(target)
        flat = pd.Series(array.ravel())
        if _overflows(flat, pd.Series(cast.ravel()), target):
            raise InputMismatchError(
                name, f"tensor {name!r} expects {spec.type} values; some are out of its range"
            )
        return cast
    return array


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join("batch" if n == -1 else str(n) for n in shape) + ")"


def enforce_signature(data: Any, signature: ModelSignature) -> Any:
    """Check ``data`` against ``signature`` and return it as the model expects it.

    Columns come back as a DataFrame in signature order, numbers cast to the signature's dtype
    where nothing is lost (``int`` into a ``float64`` column); a tensor comes back as an array
    of the signature's dtype. A 2-D array of the right width is accepted for a column signature
    and gets the column names.

    Raises:
        InputMismatchError: a column is missing or unexpected, holds the wrong kind of values,
            or the feature count or shape is wrong. Its ``field`` names the column or tensor.
    """
    if not signature.inputs:
        return data
    if signature.is_tensor:
        return _enforce_tensor(data, signature.inputs[0])
    return _enforce_columns(data, signature.inputs)
