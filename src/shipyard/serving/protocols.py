"""Request bodies of the three protocols read into what a model takes, and answers written back.

Nothing here does HTTP: each parser takes a decoded body (and a model signature) and returns the
input table, or raises :class:`RequestError` naming the field at fault. The server turns that into
a 400 with ``{"error": ...}``, so a wrong feature count, column, type or shape is never a 500.

- Open Inference Protocol v2 (``/v2/models/{name}/infer``): typed tensors. A tabular model takes
  either one 2-D tensor ``[rows, n_features]`` in signature column order, or one 1-D tensor per
  named column. The binary tensor data extension (as Triton has it) is understood both ways:
  inputs with ``parameters.binary_data_size`` take their raw bytes from after the JSON header
  (:func:`split_binary_body`), and outputs asked for with ``parameters.binary_data`` (or the
  request's ``parameters.binary_data_output``) are answered by :func:`v2_binary_output`.
- MLflow scoring (``/invocations``): ``dataframe_split``, ``dataframe_records``, ``instances``,
  ``inputs`` or ``text/csv``.
- KServe v1 (``/v1/models/{name}:predict``): ``instances``.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.entities import ModelSignature

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "INFERENCE_HEADER",
    "OUTPUTS",
    "V2_DATATYPES",
    "RequestError",
    "V2Request",
    "parse_csv",
    "parse_kserve_v1",
    "parse_mlflow",
    "parse_v2",
    "read_json",
    "split_binary_body",
    "v2_binary_output",
    "v2_output",
]

V2_DATATYPES: dict[str, str] = {
    "BOOL": "bool",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}
OUTPUTS = ("predict", "predict_proba")
"""What a client may ask for: the prediction, or class probabilities."""
INFERENCE_HEADER = "inference-header-content-length"
"""The header giving the length of the JSON that binary tensor data follows (request and answer)."""


class RequestError(Exception):
    """A request the server cannot read; answered with ``status`` and ``{"error": message}``.

    Attributes:
        field: the part of the request at fault (a tensor, column or key).
        status: the HTTP status (400: bad request; 404: no such model; 415: media type).
    """

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        self.field = field
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class V2Request:
    """An OIP v2 inference request, read."""

    data: Any
    """A DataFrame (tabular models) or an array (tensor models and models without a signature)."""
    outputs: tuple[str, ...] = ("predict",)
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    binary_outputs: frozenset[str] = frozenset()
    """The outputs to answer as binary tensor data rather than JSON."""


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
"""A JSON escape of a UTF-16 surrogate: the only way a parsed body can hold text that is not
valid Unicode (raw bytes that are not UTF-8 fail to decode)."""


def read_json(body: bytes) -> Any:
    """A JSON request body, parsed; every string in it (keys too) encodable as UTF-8.

    Raises:
        RequestError: the body is not JSON, is nested too deeply, has an integer of more digits
            than Python converts (``sys.get_int_max_str_digits()``), or holds a lone surrogate
            such as ``"\\ud800"`` (the field is named).
    """
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError("body", f"the request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise RequestError("body", "the request body is nested too deeply") from exc
    except ValueError as exc:  # an integer of more than 4300 digits
        raise RequestError("body", f"the request body has a number too long: {exc}") from exc
    if _SURROGATE_ESCAPE.search(body) is not None:
        where = _lone_surrogate(value)
        if where is not None:
            raise RequestError(
                where,
                f"{where} holds text that is not valid Unicode (a lone surrogate escape such "
                "as \\ud800)",
            )
    return value


def _lone_surrogate(value: Any) -> str | None:
    """Where in a parsed body a string (or key) cannot be encoded as UTF-8, else None."""
    stack: list[tuple[str, Any]] = [("body", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if not _encodable(item):
                return where
        elif isinstance(item, dict):
            for key, child in item.items():
                if not _encodable(key):
                    return f"{where} key {key!a}"
                stack.append((key if where == "body" else f"{where}.{key}", child))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", child) for i, child in enumerate(item))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _columns(signature: ModelSignature | None) -> list[str] | None:
    if signature is None or not signature.inputs or signature.is_tensor:
        return None
    return [spec.name for spec in signature.inputs]


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


_NUMBERS = {"FP16", "FP32", "FP64"}
_NUMBER_TYPES = (float, int)  # exact types: a bool is an int too, and is refused
_WANTS = {"BOOL": "true/false", "BYTES": "strings", "INT": "integers", "UINT": "integers"}


def _check_values(values: list[Any], datatype: str, name: str) -> None:
    """Every element fits ``datatype`` (JSON itself does not tell ints, floats and bools apart)."""
    for value in values:
        if not _fits(value, datatype):
            want = _WANTS.get(datatype, _WANTS.get(datatype.rstrip("0123456789"), "numbers"))
            raise RequestError(
                name, f"input {name!r} is {datatype} and needs {want}; got {value!r}"
            )


def _fits(value: Any, datatype: str) -> bool:
    if datatype == "BOOL":
        return isinstance(value, bool)
    if datatype == "BYTES":
        return isinstance(value, str)
    if isinstance(value, bool):
        return False
    if datatype.startswith(("INT", "UINT")):
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return isinstance(value, int | float)


def _tensor(spec: Any, index: int, tail: _TensorBytes | None) -> tuple[str, np.ndarray[Any, Any]]:
    """One OIP v2 input tensor as a numpy array of its declared shape and datatype."""
    if not isinstance(spec, dict):
        raise RequestError(f"inputs[{index}]", f"inputs[{index}] must be an object")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise RequestError(f"inputs[{index}].name", f"inputs[{index}] needs a 'name'")
    for key in ("shape", "datatype"):
        if key not in spec:
            raise RequestError(name, f"input {name!r} has no {key!r}")
    shape = spec["shape"]
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise RequestError(
            name, f"input {name!r}: 'shape' must be a list of sizes >= 0, got {shape!r}"
        )
    datatype = spec["datatype"]
    if not isinstance(datatype, str):
        raise RequestError(
            name, f"input {name!r}: 'datatype' must be a string such as \"FP64\", got {datatype!r}"
        )
    if datatype not in V2_DATATYPES:
        raise RequestError(
            name,
            f"input {name!r}: unknown datatype {datatype!r} (one of {', '.join(V2_DATATYPES)})",
        )
    if "parameters" in spec and (size := _binary_size(spec, name)) is not None:
        return name, _binary_tensor(name, shape, datatype, size, tail)
    if "data" not in spec:
        raise RequestError(name, f"input {name!r} has no 'data' (nor parameters.binary_data_size)")
    return name, _json_tensor(name, shape, datatype, spec["data"])


def _json_tensor(name: str, shape: list[int], datatype: str, data: Any) -> np.ndarray[Any, Any]:
    """An input tensor's ``data`` (flat or nested JSON values) as an array of ``shape``."""
    import numpy as np

    flat = isinstance(data, list) and not (data and isinstance(data[0], list))
    values = data if flat else _flatten(data)
    if len(values) != math.prod(shape):
        raise RequestError(
            name,
            f"input {name!r} has shape {shape} ({math.prod(shape)} values) "
            f"but {len(values)} values in 'data'",
        )
    if not (datatype in _NUMBERS and all(type(v) in _NUMBER_TYPES for v in values)):
        _check_values(values, datatype, name)
    try:
        with np.errstate(over="raise"):  # 1e300 as FP32 would silently become inf
            array = np.array(values, dtype=V2_DATATYPES[datatype]).reshape(shape)
    except (OverflowError, ValueError, FloatingPointError) as exc:
        raise RequestError(name, f"input {name!r}: values do not fit {datatype}: {exc}") from exc
    return array


_BYTES_LENGTH = struct.Struct("<I")
"""The length before each element of a BYTES tensor's binary data."""


def split_binary_body(body: bytes, header_length: bytes) -> tuple[bytes, memoryview]:
    """A body under the binary tensor data extension: its JSON, and the tensor bytes after it.

    Args:
        body: the whole request body.
        header_length: the value of the ``Inference-Header-Content-Length`` header.

    Raises:
        RequestError: the header is not a whole number, or larger than the body.
    """
    text = header_length.strip()
    if not text.isdigit():
        raise RequestError(
            INFERENCE_HEADER,
            "the Inference-Header-Content-Length header must be the length of the JSON before "
            f"the binary tensor data, in bytes; got {text.decode('latin-1')!r}",
        )
    length = int(text)
    if length > len(body):
        raise RequestError(
            INFERENCE_HEADER,
            f"the Inference-Header-Content-Length header says the JSON is {length} bytes, but the "
            f"whole body is {len(body)}: give the length of the JSON alone",
        )
    return body[:length], memoryview(body)[length:]


class _TensorBytes:
    """The binary tensor data after a request's JSON, handed to its inputs in order."""

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.taken = 0

    def take(self, name: str, size: int) -> memoryview:
        left = len(self.data) - self.taken
        if size > left:
            raise RequestError(
                name,
                f"input {name!r} has binary_data_size {size}, but only {left} bytes of binary "
                "data are left for it after the JSON (and the inputs before it)",
            )
        self.taken += size
        return self.data[self.taken - size : self.taken]

    def check_all_taken(self) -> None:
        left = len(self.data) - self.taken
        if left:
            raise RequestError(
                "body",
                f"{left} bytes after the JSON belong to no input: give each binary input's size "
                "in parameters.binary_data_size, and the JSON's length in "
                "Inference-Header-Content-Length",
            )


def _binary_size(spec: dict[str, Any], name: str) -> int | None:
    """An input's ``parameters.binary_data_size``; None when it has none (its data is JSON)."""
    parameters = spec.get("parameters")
    if not parameters or not isinstance(parameters, dict):
        return None
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RequestError(
            name, f"input {name!r}: binary_data_size must be a number of bytes, got {size!r}"
        )
    if "data" in spec:
        raise RequestError(
            name, f"input {name!r} has both 'data' and binary_data_size: give one of them"
        )
    return size


def _binary_tensor(
    name: str, shape: list[int], datatype: str, size: int, tail: _TensorBytes | None
) -> np.ndarray[Any, Any]:
    """An input tensor read from its binary data: little-endian, row-major, no padding."""
    import numpy as np

    if tail is None:
        raise RequestError(
            name,
            f"input {name!r} has binary_data_size, but the request has no "
            "Inference-Header-Content-Length header (the length of the JSON before the data)",
        )
    count = math.prod(shape)
    if datatype == "BYTES":
        items = _bytes_elements(name, tail.take(name, size))
        if len(items) != count:
            raise RequestError(
                name,
                f"input {name!r} has shape {shape} ({count} values) but {len(items)} values in "
                "its binary data",
            )
        array = np.empty(count, dtype=object)
        array[:] = items
        return array.reshape(shape)
    dtype = np.dtype(V2_DATATYPES[datatype]).newbyteorder("<")
    if size != count * dtype.itemsize:
        raise RequestError(
            name,
            f"input {name!r} is {datatype} of shape {shape}: {count * dtype.itemsize} bytes "
            f"({count} x {dtype.itemsize}), but its binary_data_size is {size}",
        )
    array = np.frombuffer(tail.take(name, size), dtype=dtype)
    if datatype == "BOOL" and array.view(np.uint8).max(initial=0) > 1:
        raise RequestError(name, f"input {name!r} is BOOL: each byte must be 0 or 1")
    # a copy in native byte order: the view of the body is read-only, and models may write
    # into their input as they can into an array read from JSON
    return array.astype(dtype.newbyteorder("=")).reshape(shape)


def _bytes_elements(name: str, data: memoryview) -> list[str]:
    """The elements of a BYTES tensor's binary data: each a 4-byte length, then UTF-8 text."""
    items: list[str] = []
    offset = 0
    while offset < len(data):
        end = offset + _BYTES_LENGTH.size
        if end <= len(data):
            end += _BYTES_LENGTH.unpack_from(data, offset)[0]
        if end > len(data):
            raise RequestError(
                name,
                f"input {name!r}: element {len(items)} of its BYTES data runs past its "
                "binary_data_size (each element is a 4-byte little-endian length, then the bytes)",
            )
        try:
            items.append(bytes(data[offset + _BYTES_LENGTH.size : end]).decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise RequestError(
                name, f"input {name!r}: element {len(items)} is not UTF-8 text ({exc})"
            ) from exc
        offset = end
    return items


def parse_v2(
    body: Any, signature: ModelSignature | None, binary: memoryview | None = None
) -> V2Request:
    """Read an OIP v2 inference request for a model with ``signature``.

    A 2-D tensor stays an array (its width checked here, its types by the server); tensors
    per column become one array when they share a dtype, else a DataFrame.

    Args:
        body: the request's JSON, parsed.
        signature: the model's signature (None: the model takes one tensor as it comes).
        binary: the bytes after the JSON under the binary tensor data extension (see
            :func:`split_binary_body`); each input with ``parameters.binary_data_size`` takes
            that many of them, in input order, and all must be taken.

    Raises:
        RequestError: the body is malformed, or does not fit the model's columns.
    """

    if not isinstance(body, dict):
        raise RequestError("body", "the request body must be a JSON object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("inputs", "'inputs' must be a non-empty list of tensors")
    tail = None if binary is None else _TensorBytes(binary)
    tensors = [_tensor(spec, i, tail) for i, spec in enumerate(inputs)]
    if tail is not None:
        tail.check_all_taken()
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError("id", f"'id' must be a string, got {request_id!r}")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RequestError("parameters", "'parameters' must be an object")
    all_binary = bool(parameters) and _flag(parameters, "binary_data_output", "parameters", False)
    outputs, binary_outputs = _requested_outputs(body.get("outputs"), all_binary)
    columns = _columns(signature)
    data: Any
    if columns is None:
        if len(tensors) != 1:
            raise RequestError(
                tensors[1][0], f"the model takes one tensor; got {len(tensors)} inputs"
            )
        data = tensors[0][1]
    elif len(tensors) == 1 and tensors[0][1].ndim == 2:
        name, array = tensors[0]
        if array.shape[1] != len(columns):
            raise RequestError(
                name,
                f"input {name!r} has {array.shape[1]} features; the model takes "
                f"{len(columns)} ({columns[0]!r} ... {columns[-1]!r})",
            )
        data = array  # checked against the columns' types by the server
    else:
        data = _frame_from_columns(tensors, columns)
    return V2Request(
        data=data,
        outputs=outputs,
        id=request_id,
        parameters=parameters,
        binary_outputs=binary_outputs,
    )


def _frame_from_columns(tensors: list[tuple[str, np.ndarray[Any, Any]]], columns: list[str]) -> Any:
    import pandas as pd

    known = set(columns)
    named: dict[str, Any] = {}
    rows: int | None = None
    for name, array in tensors:
        if name not in known:
            hint = f"; or send one 2-D tensor [rows, {len(columns)}]" if len(tensors) == 1 else ""
            raise RequestError(name, f"input {name!r} is not a column of the model{hint}")
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise RequestError(
                name,
                f"input {name!r} must be 1-D (one value per row); got shape {list(array.shape)}",
            )
        if rows is not None and len(array) != rows:
            raise RequestError(
                name, f"input {name!r} has {len(array)} rows; the other inputs have {rows}"
            )
        rows = len(array)
        if name in named:
            raise RequestError(name, f"input {name!r} is given twice")
        named[name] = array
    missing = [c for c in columns if c not in named]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise RequestError(missing[0], f"missing input {missing[0]!r}{more}")
    if len({array.dtype for array in named.values()}) == 1:
        import numpy as np

        return np.column_stack([named[c] for c in columns])
    return pd.DataFrame({c: named[c] for c in columns})


_NO_BINARY: frozenset[str] = frozenset()
_PREDICT_BINARY = frozenset(("predict",))


def _requested_outputs(spec: Any, all_binary: bool) -> tuple[tuple[str, ...], frozenset[str]]:
    """The outputs asked for, and those of them to answer as binary data."""
    if spec is None:
        return ("predict",), _PREDICT_BINARY if all_binary else _NO_BINARY
    if not isinstance(spec, list) or not spec:
        raise RequestError("outputs", "'outputs' must be a non-empty list of {\"name\": ...}")
    names = []
    binary = []
    for i, item in enumerate(spec):
        name = item.get("name") if isinstance(item, dict) else None
        if name not in OUTPUTS:
            raise RequestError(
                f"outputs[{i}]",
                f"unknown output {name!r}: ask for one of {', '.join(OUTPUTS)}",
            )
        names.append(name)
        parameters = item.get("parameters")
        if isinstance(parameters, dict) and parameters:
            if _flag(parameters, "binary_data", f"outputs[{i}].parameters", all_binary):
                binary.append(name)
        elif all_binary:
            binary.append(name)
    return tuple(names), frozenset(binary)


def _flag(parameters: dict[str, Any], key: str, where: str, default: bool) -> bool:
    """A true/false parameter (``default`` when not given)."""
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise RequestError(where, f"'{where}.{key}' must be true or false, got {value!r}")
    return value


_DATATYPE_OF = {numpy_name: name for name, numpy_name in V2_DATATYPES.items()}


def _v2_datatype(array: np.ndarray[Any, Any]) -> str:
    kind = array.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iuf":
        return _DATATYPE_OF.get(array.dtype.name, "FP64")
    return "BYTES"


def v2_output(name: str, values: Any) -> dict[str, Any]:
    """An OIP v2 output tensor holding ``values`` (an array or a list)."""
    import numpy as np

    array = np.asarray(values)
    datatype = _v2_datatype(array)
    if datatype == "BYTES":
        data = [str(v) for v in array.ravel().tolist()]
    else:
        data = array.ravel().tolist()
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": data}


def v2_binary_output(name: str, values: Any) -> tuple[dict[str, Any], bytes]:
    """An OIP v2 output tensor as binary data: its JSON (with ``parameters.binary_data_size``)
    and its bytes, little-endian and row-major (BYTES: each element's 4-byte length, then its
    UTF-8 text)."""
    import numpy as np

    array = np.asarray(values)
    datatype = _v2_datatype(array)
    if datatype == "BYTES":
        raw = b"".join(_length_prefixed(v) for v in array.ravel().tolist())
    else:
        little = np.dtype(V2_DATATYPES[datatype]).newbyteorder("<")
        raw = array.astype(little, copy=False).tobytes()
    output = {
        "name": name,
        "shape": list(array.shape),
        "datatype": datatype,
        "parameters": {"binary_data_size": len(raw)},
    }
    return output, raw


def _length_prefixed(value: Any) -> bytes:
    """One BYTES element: its length, then its bytes (text as UTF-8)."""
    data = value if isinstance(value, bytes) else str(value).encode("utf-8", "backslashreplace")
    return _BYTES_LENGTH.pack(len(data)) + data


def _table(value: Any, key: str, columns: list[str] | None, uniform: bool = False) -> Any:
    """``instances`` / ``inputs``: a list of rows (lists or objects) or an object of columns."""
    import pandas as pd

    if isinstance(value, dict):
        lengths = {len(v) if isinstance(v, list) else 1 for v in value.values()}
        if len(lengths) > 1:
            raise RequestError(key, f"the columns of {key!r} have different lengths")
        try:
            return (
                pd.DataFrame(value)
                if lengths != {1} or any(isinstance(v, list) for v in value.values())
                else pd.DataFrame([value])
            )
        except ValueError as exc:
            raise RequestError(key, f"{key!r} is not a table: {exc}") from exc
    if not isinstance(value, list) or not value:
        raise RequestError(key, f"{key!r} must be a non-empty list of rows or an object of columns")
    if all(isinstance(row, dict) for row in value):
        return pd.DataFrame(value)
    if all(isinstance(row, list) for row in value):
        widths = {len(row) for row in value}
        if len(widths) > 1:
            raise RequestError(key, f"the rows of {key!r} have different lengths {sorted(widths)}")
        if columns is not None and widths != {len(columns)}:
            raise RequestError(
                key,
                f"rows of {key!r} have {widths.pop()} features; the model takes {len(columns)}",
            )
        if columns is not None:
            numbers = _number_rows(value) if uniform else None
            return numbers if numbers is not None else pd.DataFrame(value, columns=columns)
        import numpy as np

        try:
            return np.array(value)
        except ValueError as exc:
            raise RequestError(key, f"{key!r} is not a rectangular array: {exc}") from exc
    if columns is not None and len(columns) > 1:
        raise RequestError(
            key,
            f"{key!r} must hold rows (lists of {len(columns)} values or objects keyed by column)",
        )
    return pd.DataFrame({columns[0]: value}) if columns else value


def _number_rows(rows: list[Any]) -> np.ndarray[Any, Any] | None:
    """Rows of plain JSON numbers as one array (columns in signature order), else None."""
    if not rows or not all(
        isinstance(row, list) and all(type(v) in _NUMBER_TYPES for v in row) for row in rows
    ):
        return None
    import numpy as np

    try:
        array = np.array(rows)
    except (OverflowError, ValueError):
        return None
    return array if array.ndim == 2 and array.dtype.kind in "if" else None


def parse_mlflow(body: Any, signature: ModelSignature | None, uniform: bool = False) -> Any:
    """Read an MLflow scoring JSON body into a DataFrame (or array for tensor models).

    With ``uniform`` (every column of the signature has one numeric type), rows of plain
    numbers in column order stay one array.
    """
    import pandas as pd

    if not isinstance(body, dict):
        raise RequestError("body", "the request body must be a JSON object")
    keys = [k for k in ("dataframe_split", "dataframe_records", "instances", "inputs") if k in body]
    if len(keys) != 1:
        raise RequestError(
            "body",
            "give exactly one of 'dataframe_split', 'dataframe_records', 'instances', 'inputs'"
            + (f" (got {', '.join(keys)})" if keys else ""),
        )
    key = keys[0]
    value = body[key]
    columns = _columns(signature)
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise RequestError(key, "'dataframe_split' needs 'columns' and 'data' (a list of rows)")
        cols = value.get("columns", columns)
        if uniform and cols == columns and (numbers := _number_rows(value["data"])) is not None:
            if numbers.ndim == 2 and numbers.shape[1] == len(cols or ()):
                return numbers
        try:
            return pd.DataFrame(value["data"], columns=cols)
        except (ValueError, TypeError) as exc:
            raise RequestError(key, f"'dataframe_split' is not a table: {exc}") from exc
    if key == "dataframe_records":
        if not isinstance(value, list) or not value or not all(isinstance(r, dict) for r in value):
            raise RequestError(key, "'dataframe_records' must be a non-empty list of objects")
        return pd.DataFrame(value)
    return _table(value, key, columns, uniform)


def parse_kserve_v1(body: Any, signature: ModelSignature | None, uniform: bool = False) -> Any:
    """Read a KServe v1 ``{"instances": [...]}`` body (``uniform`` as for :func:`parse_mlflow`)."""
    if not isinstance(body, dict) or "instances" not in body:
        raise RequestError("instances", 'the body must be {"instances": [...]}')
    return _table(body["instances"], "instances", _columns(signature), uniform)


def parse_csv(text: bytes) -> pd.DataFrame:
    """Read a ``text/csv`` body with a header row."""
    import pandas as pd

    if not text.strip():
        raise RequestError("body", "the CSV body is empty")
    try:
        return pd.read_csv(io.BytesIO(text))
    except (ValueError, pd.errors.ParserError) as exc:
        raise RequestError("body", f"cannot read the CSV body: {exc}") from exc
